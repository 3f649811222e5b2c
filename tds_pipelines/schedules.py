"""Schedules replacing the old APScheduler jobs, in TDS_TIMEZONE, running by default."""

from __future__ import annotations

import dagster as dg

from tds_pipelines import settings
from tds_pipelines.jobs import full_sync, incremental_sync, stock_sync


def _schedule(name: str, job, cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=settings.timezone(),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )


schedules = [
    _schedule("daily_full_sync", full_sync, "0 2 * * *"),
    _schedule("hourly_incremental_sync", incremental_sync, "0 * * * *"),
    _schedule("stock_sync_every_15_minutes", stock_sync, "*/15 * * * *"),
]
