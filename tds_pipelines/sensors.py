"""The sensor launching `process_webhook_queue` when webhooks wait: one run per backlog, never one per webhook.

Each tick costs one bounded read of the queue (skipped while a run is active) and ends its transaction. The
decision is the pure function `decide`.
"""

import os
from dataclasses import dataclass

import dagster as dg

from tds_pipelines.erp.queue import peek_ready
from tds_pipelines.queue_jobs import process_webhook_queue
from tds_pipelines.resources import ErpDatabase

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class Decision:
    """Launch with `run_key` (None: skip, saying `reason`); `cursor` is the number of launches so far."""

    run_key: str | None
    cursor: str | None
    reason: str


def decide(ready: int, newest_ready_id: int | None, run_active: bool, cursor: str | None) -> Decision:
    """Launch when items are ready and no run of the job is queued or running (that run drains them). The run
    key is never reused, even after a failed run (Dagster would skip a reused key): it carries the count of
    launches kept in the cursor, and the newest ready id."""
    if run_active:
        return Decision(None, cursor, "a process_webhook_queue run is queued or running: it applies what waits")
    if not ready:
        return Decision(None, cursor, "no webhook is waiting")
    launches = int(cursor or 0) + 1
    return Decision(f"webhooks-{launches}-{newest_ready_id}", str(launches), f"{ready} ready items")


def _interval() -> int:
    return int(os.environ.get("TDS_WEBHOOK_SENSOR_SECONDS") or 10)


@dg.sensor(
    job=process_webhook_queue,
    minimum_interval_seconds=_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches process_webhook_queue when webhooks wait in tds_sync_queue and no such run is active",
)
def zoho_webhook_queue_sensor(context: dg.SensorEvaluationContext, erp: ErpDatabase) -> dg.SensorResult:
    active = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=process_webhook_queue.name, statuses=ACTIVE), limit=1
    )
    ready, newest = (0, None) if active else peek_ready(erp.engine())
    decision = decide(ready, newest, bool(active), context.cursor)
    if decision.run_key is None:
        return dg.SensorResult(skip_reason=decision.reason)
    context.log.info(f"launching process_webhook_queue: {decision.reason}")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=decision.run_key)], cursor=decision.cursor)
