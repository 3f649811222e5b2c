"""The one Definitions object of the TDS code location; it only assembles."""

from __future__ import annotations

import os

import dagster as dg

from tds_pipelines import settings
from tds_pipelines.alerting import alert_sensors
from tds_pipelines.assets import entity_assets, item_stock
from tds_pipelines.checks import count_checks, statistics_comparison
from tds_pipelines.health import auto_heal, webhook_queue
from tds_pipelines.jobs import full_sync, incremental_sync, stock_sync
from tds_pipelines.queue_jobs import queue_jobs
from tds_pipelines.resources import ErpDatabase, ZohoApi
from tds_pipelines.retention import purge_run_history, run_history_schedule
from tds_pipelines.schedules import schedules
from tds_pipelines.sensors import zoho_webhook_queue_sensor
from tds_pipelines.watchdog import run_watchdog


def _optional(name: str) -> str | None:
    return os.environ.get(name) or None


def build_defs() -> dg.Definitions:
    """Assemble the code location; optional settings are read from the environment at load time."""
    return dg.Definitions(
        assets=[*entity_assets, item_stock, webhook_queue],
        asset_checks=count_checks,
        jobs=[
            full_sync,
            incremental_sync,
            stock_sync,
            auto_heal,
            statistics_comparison,
            *queue_jobs,
            purge_run_history,
        ],
        schedules=[*schedules, run_history_schedule],
        sensors=[zoho_webhook_queue_sensor, *alert_sensors, run_watchdog],
        resources={
            "erp": ErpDatabase(
                # The URL may carry a password: resolved at launch, never shown in the UI.
                database_url=dg.EnvVar("TDS_DATABASE_URL") if _optional("TDS_DATABASE_URL") else None,
                db_schema=_optional("TDS_DB_SCHEMA"),
            ),
            "zoho": ZohoApi(
                client_id=dg.EnvVar("ZOHO_CLIENT_ID"),
                client_secret=dg.EnvVar("ZOHO_CLIENT_SECRET"),
                refresh_token=dg.EnvVar("ZOHO_REFRESH_TOKEN"),
                organization_id=dg.EnvVar("ZOHO_ORGANIZATION_ID"),
                data_center=_optional("ZOHO_DATA_CENTER") or "com",
                accounts_url=_optional("ZOHO_ACCOUNTS_URL"),
                api_url=_optional("ZOHO_API_URL"),
                calls_per_minute=settings.zoho_calls_per_minute(),
                daily_limit=settings.zoho_daily_limit(),
                api_shares=settings.zoho_api_shares(),
            ),
        },
    )


defs = build_defs()
