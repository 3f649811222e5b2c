"""What the run queue and run monitoring know of each TDS job: the tags `dagster.yaml`'s limits read, and how
long a run may take before run monitoring cancels it."""

from __future__ import annotations

ZOHO_TAG = "tds/zoho"  # runs that call Zoho: the queue lets few of them run at once
JOB_TAG = "tds/job"  # one run per job at a time: two full syncs never overlap, nothing piles up
MAX_RUNTIME_TAG = "dagster/max_runtime"

# Seconds. Generous: a sync waits for Zoho's per-minute budget; the comparison may wait hours for a full sync.
MAX_RUNTIME = {
    "full_sync": 6 * 3600,
    "incremental_sync": 55 * 60,
    "stock_sync": 30 * 60,
    "statistics_comparison": 5 * 3600,
    "auto_heal": 10 * 60,
    "process_webhook_queue": 15 * 60,
    "replay_dead_letters": 15 * 60,
    "process_single_webhook": 10 * 60,
    "purge_run_history": 30 * 60,
}


def job_tags(job: str, calls_zoho: bool) -> dict[str, str]:
    """The tags of every run of `job`."""
    tags = {JOB_TAG: job, MAX_RUNTIME_TAG: str(MAX_RUNTIME[job])}
    return tags | ({ZOHO_TAG: "true"} if calls_zoho else {})
