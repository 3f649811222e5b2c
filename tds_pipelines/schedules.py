"""The five schedules replacing the old APScheduler jobs, in TDS_TIMEZONE, running by default.

A tick whose job still has a run queued or running is skipped, saying which: runs never pile up behind a
slow one (and two runs never sync one entity at once anyway: each entity has its lock). Crons can be
overridden per schedule with TDS_SCHEDULE_CRONS (a JSON object), e.g. to watch one fire within a minute.
"""

from __future__ import annotations

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from tds_pipelines import settings
from tds_pipelines.checks import statistics_comparison
from tds_pipelines.health import auto_heal
from tds_pipelines.jobs import full_sync, incremental_sync, stock_sync

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]

# name, job, cron, what an operator reads in the UI
PLAN = (
    (
        "daily_full_sync",
        full_sync,
        "0 2 * * *",
        "02:00: every entity listed whole, deletions confirmed and tombstoned, stock per warehouse.",
    ),
    (
        "hourly_incremental_sync",
        incremental_sync,
        "0 * * * *",
        "Every hour: what changed in Zoho since each entity's cursor (webhooks bring most changes sooner).",
    ),
    (
        "stock_sync_every_15_minutes",
        stock_sync,
        "*/15 * * * *",
        "Every 15 minutes: stock of the items touched since the last run (100 items a call).",
    ),
    (
        "auto_heal_every_15_minutes",
        auto_heal,
        "*/15 * * * *",
        "Every 15 minutes: stuck webhooks back to the queue, old dead letters retried once, queue health "
        "checked (no Zoho call).",
    ),
    (
        "daily_statistics_comparison",
        statistics_comparison,
        "0 3 * * *",
        "03:00, after the full sync: Zoho's count of each entity against the ERP's (one call per entity).",
    ),
)


def build_schedule(name: str, job, cron: str, description: str) -> dg.ScheduleDefinition:
    cron = settings.schedule_crons().get(name, cron)
    if not is_valid_cron_string(cron):
        raise ValueError(f"TDS_SCHEDULE_CRONS: {cron!r} for {name} is not a cron expression")

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=settings.timezone(),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        active = context.instance.get_run_records(filters=dg.RunsFilter(job_name=job.name, statuses=ACTIVE), limit=1)
        if active:
            run = active[0].dagster_run
            return dg.SkipReason(f"{job.name} run {run.run_id[:8]} is still {run.status.value.lower()}")
        return dg.RunRequest()

    return _tick


schedules = [build_schedule(*entry) for entry in PLAN]
