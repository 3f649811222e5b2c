"""One asset per Zoho entity (`zoho/<name>`), built from the registry, plus `zoho/item_stock`."""

from datetime import timedelta

import dagster as dg

from tds_pipelines.entities import ENTITIES, EntitySpec
from tds_pipelines.partitions import document_months
from tds_pipelines.resources import ErpDatabase, ZohoApi
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.stock import sync_item_stock
from tds_pipelines.zoho.client import ZohoClient

SCOPE_TAG = "tds/scope"  # "full" or "incremental" (the default), set by the sync jobs


def run_scope(context: dg.AssetExecutionContext) -> Scope:
    """A partition run covers its months; other runs are full or incremental as their job's tag says."""
    if context.has_partition_key_range:
        window = context.partition_time_window
        return Scope("window", window.start.date(), window.end.date() - timedelta(days=1))
    return Scope("full" if context.run.tags.get(SCOPE_TAG) == "full" else "incremental")


def report(context: dg.AssetExecutionContext, stats: SyncStats, client: ZohoClient) -> dg.MaterializeResult:
    """Log the figures, warn about skips and rejects, and return them (with the client's retries, token
    refreshes and seconds spent waiting for the shared budget) as materialization metadata."""
    context.log.info(stats.summary())
    if stats.skipped_reason:
        context.log.warning(f"{stats.entity} skipped: {stats.skipped_reason}")
    for error in stats.errors[:20]:
        context.log.warning(f"kept as a dead letter: {error}")
    usage = {k: v for k, v in client.usage().items() if k in ("retries", "token_refreshes", "budget_wait_seconds")}
    return dg.MaterializeResult(metadata=stats.as_metadata() | usage)


def record_touched_months(context: dg.AssetExecutionContext, spec: EntitySpec, stats: SyncStats) -> None:
    """Non-partition runs mark the (entity, month) partitions they wrote: partition status stays true."""
    if context.has_partition_key_range:
        return
    existing = set(document_months.get_partition_keys())  # months up to now: future-dated documents have none
    for month in sorted(stats.months & existing):
        context.log_event(
            dg.AssetMaterialization(
                asset_key=spec.asset_key,
                partition=month,
                metadata={"written_by": f"{context.job_name} ({stats.scope})"},
            )
        )


def build_entity_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    """The asset of one registry row: lists, diffs, fetches changed details and upserts into its table."""

    @dg.asset(
        key=spec.asset_key,
        group_name="zoho",
        kinds={"python", "postgres"},
        partitions_def=document_months if spec.partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if spec.partitioned else None,
        description=(
            f"Zoho {spec.api.title()} `{spec.path}` mirrored into `{spec.table}` "
            f"(incremental strategy: {spec.strategy}"
            + (", details fetched for changed records" if spec.needs_detail else "")
            + ")."
        ),
        metadata={"table": spec.table, "strategy": spec.strategy, "zoho_path": f"{spec.api}:{spec.path}"},
    )
    def _sync(context: dg.AssetExecutionContext, zoho: ZohoApi, erp: ErpDatabase) -> dg.MaterializeResult:
        engine = erp.engine()
        client = zoho.client(engine, context.job_name)
        stats = sync_entity(spec, client, engine, run_scope(context), context.run_id)
        record_touched_months(context, spec, stats)
        return report(context, stats, client)

    return _sync


entity_assets = [build_entity_asset(spec) for spec in ENTITIES]


@dg.asset(
    key=["zoho", "item_stock"],
    group_name="zoho",
    kinds={"python", "postgres"},
    deps=[dg.AssetKey(["zoho", "products"]), dg.AssetKey(["zoho", "warehouses"])],
    description=(
        "Stock on hand per item and warehouse in `zoho_item_stock`: the per-warehouse listing once a day "
        "(and in full syncs), otherwise only items touched since the last run, 100 per `/itemdetails` call."
    ),
    metadata={"table": "zoho_item_stock"},
)
def item_stock(context: dg.AssetExecutionContext, zoho: ZohoApi, erp: ErpDatabase) -> dg.MaterializeResult:
    engine = erp.engine()
    client = zoho.client(engine, context.job_name)
    full = True if context.run.tags.get(SCOPE_TAG) == "full" else None
    return report(context, sync_item_stock(client, engine, context.run_id, full=full), client)
