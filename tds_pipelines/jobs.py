"""The sync jobs. They run in process: Zoho's budget, not CPU, bounds them, and a process per step costs."""

from __future__ import annotations

import dagster as dg

from tds_pipelines.assets import SCOPE_TAG
from tds_pipelines.run_limits import job_tags

# Without their checks: the count checks spend Zoho calls, and only statistics_comparison runs them.
ZOHO_ASSETS = dg.AssetSelection.groups("zoho").without_checks()
ENTITY_ASSETS = ZOHO_ASSETS - dg.AssetSelection.assets(["zoho", "item_stock"])

full_sync = dg.define_asset_job(
    "full_sync",
    selection=ZOHO_ASSETS,
    executor_def=dg.in_process_executor,
    tags={SCOPE_TAG: "full"} | job_tags("full_sync", calls_zoho=True),
    description="Every entity listed whole (documents of every date), tombstones, stock per warehouse.",
)
incremental_sync = dg.define_asset_job(
    "incremental_sync",
    selection=ENTITY_ASSETS,
    executor_def=dg.in_process_executor,
    tags={SCOPE_TAG: "incremental"} | job_tags("incremental_sync", calls_zoho=True),
    description="What changed since each entity's cursor, by the entity's incremental strategy.",
)
stock_sync = dg.define_asset_job(
    "stock_sync",
    selection=dg.AssetSelection.assets(["zoho", "item_stock"]).without_checks(),
    executor_def=dg.in_process_executor,
    tags={SCOPE_TAG: "incremental"} | job_tags("stock_sync", calls_zoho=True),
    description="Stock of items touched since the last run; the per-warehouse listing once a day.",
)
