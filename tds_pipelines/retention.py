"""Run history retention. Dagster purges old schedule and sensor ticks itself (dagster.yaml `retention`) but
never runs: `purge_run_history`, daily, deletes the runs that ended more than TDS_RUN_HISTORY_DAYS ago with
their event logs, at most `max_runs` a run so that the first purge of a long history stays short (the next
days finish it). The assets keep a recent materialization: the daily full sync records every entity, and every
month of the dated ones, again each day."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from tds_pipelines import settings
from tds_pipelines.run_limits import job_tags
from tds_pipelines.schedules import build_schedule

ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
PAGE = 100


class PurgeConfig(dg.Config):
    older_than_days: float | None = Field(default=None, description="default: TDS_RUN_HISTORY_DAYS (0 keeps all)")
    max_runs: int = Field(default=5_000, ge=1, description="runs deleted at most by one purge")


@dg.op(out=dg.Out(dg.Nothing), description="Delete the runs (and their logs) that ended before the retention")
def delete_old_runs(context: dg.OpExecutionContext, config: PurgeConfig) -> dg.Output:
    days = settings.run_history_days() if config.older_than_days is None else config.older_than_days
    if days <= 0:
        context.log.info("run history kept whole (TDS_RUN_HISTORY_DAYS=0)")
        return dg.Output(None, metadata={"deleted": 0, "older_than_days": days})
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = 0
    while deleted < config.max_runs:
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(statuses=ENDED, updated_before=cutoff), limit=min(PAGE, config.max_runs - deleted)
        )
        for record in records:
            context.instance.delete_run(record.dagster_run.run_id)
        deleted += len(records)
        if len(records) < PAGE:
            break
    left = len(context.instance.get_run_ids(filters=dg.RunsFilter(statuses=ENDED, updated_before=cutoff), limit=1))
    context.log.info(f"deleted {deleted} runs that ended before {cutoff:%Y-%m-%d %H:%M} UTC")
    return dg.Output(
        None,
        metadata={"deleted": deleted, "older_than_days": days, "cutoff": cutoff.isoformat(), "more_left": bool(left)},
    )


@dg.job(
    tags=job_tags("purge_run_history", calls_zoho=False),
    executor_def=dg.in_process_executor,
    description="Delete the run history older than TDS_RUN_HISTORY_DAYS",
)
def purge_run_history():
    delete_old_runs()


run_history_schedule = build_schedule(
    "daily_run_history_purge",
    purge_run_history,
    "30 4 * * *",
    "04:30: runs that ended more than TDS_RUN_HISTORY_DAYS ago (default 90) deleted with their logs.",
)
