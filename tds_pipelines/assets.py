"""One asset per Zoho entity (`zoho/<name>`), built from the registry, plus `zoho/item_stock`."""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg

from tds_pipelines.entities import ENTITIES, EntitySpec
from tds_pipelines.outages import retried_on_outage
from tds_pipelines.partitions import document_months
from tds_pipelines.resources import ErpDatabase, ZohoApi
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.stock import sync_item_stock
from tds_pipelines.zoho.client import ZohoClient

SCOPE_TAG = "tds/scope"  # "full" or "incremental" (the default), set by the sync jobs
# How stale an asset may grow: the hourly sync (or, for small sets listed whole, the daily one) plus slack
# for a slow or skipped run; stock every 15 minutes.
HOURLY_FRESHNESS = dg.FreshnessPolicy.time_window(warn_window=timedelta(hours=2), fail_window=timedelta(hours=6))
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(warn_window=timedelta(hours=26), fail_window=timedelta(hours=50))
STOCK_FRESHNESS = dg.FreshnessPolicy.time_window(warn_window=timedelta(hours=1), fail_window=timedelta(hours=3))


def run_scope(context: dg.AssetExecutionContext) -> Scope:
    """A partition run (one month or a range) covers its months; other runs are full or incremental as their
    job's tag says."""
    if context.has_partition_key or context.has_partition_key_range:
        window = context.partition_time_window
        return Scope("window", window.start.date(), window.end.date() - timedelta(days=1))
    return Scope("full" if context.run.tags.get(SCOPE_TAG) == "full" else "incremental")


def report(context: dg.AssetExecutionContext, stats: SyncStats, client: ZohoClient) -> Iterator[dg.MaterializeResult]:
    """Log the figures and yield them (with the client's retries, token refreshes and seconds spent waiting
    for the shared budget) as materialization metadata, for a sync that did its work.

    A sync that did not is never recorded as materialized: over budget, the step fails with the reason and
    the figures; left to another run, or not due, it records an observation saying why and yields nothing."""
    context.log.info(stats.summary())
    for error in stats.errors[:20]:
        context.log.warning(f"kept as a dead letter: {error}")
    for note in stats.notes:
        context.log.info(note)
    usage = {k: v for k, v in client.usage().items() if k in ("retries", "token_refreshes", "budget_wait_seconds")}
    metadata = stats.as_metadata() | usage
    if stats.skipped == "budget":
        raise dg.Failure(description=f"{stats.entity} skipped: {stats.skipped_reason}", metadata=metadata)
    if stats.skipped:
        context.log.warning(f"{stats.entity} not synced by this run: {stats.skipped_reason}")
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, metadata={"skipped": stats.skipped_reason}))
        return
    yield dg.MaterializeResult(metadata=metadata)


def record_touched_months(context: dg.AssetExecutionContext, spec: EntitySpec, stats: SyncStats) -> None:
    """Non-partition runs mark the (entity, month) partitions they wrote, and a complete full listing every
    month (empty ones included: they are in sync too), so partition status stays true whatever wrote."""
    if context.has_partition_key or context.has_partition_key_range or stats.skipped:
        return
    existing = document_months.get_partition_keys()  # months up to now: future-dated documents have none
    months = existing if stats.all_months else sorted(stats.months & set(existing))
    for month in months:
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
        freshness_policy=DAILY_FRESHNESS if spec.strategy == "full_only" else HOURLY_FRESHNESS,
        output_required=False,
        description=(
            f"Zoho {spec.api.title()} `{spec.path}` mirrored into `{spec.table}` "
            f"(incremental strategy: {spec.strategy}"
            + (", details fetched for changed records" if spec.needs_detail else "")
            + ")."
        ),
        metadata={"table": spec.table, "strategy": spec.strategy, "zoho_path": f"{spec.api}:{spec.path}"},
    )
    def _sync(context: dg.AssetExecutionContext, zoho: ZohoApi, erp: ErpDatabase) -> Iterator[dg.MaterializeResult]:
        with retried_on_outage(context):
            engine = erp.engine()
            client = zoho.client(engine, context.job_name)
            stats = sync_entity(spec, client, engine, run_scope(context), context.run_id)
            record_touched_months(context, spec, stats)
        yield from report(context, stats, client)

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
    freshness_policy=STOCK_FRESHNESS,
    output_required=False,
)
def item_stock(context: dg.AssetExecutionContext, zoho: ZohoApi, erp: ErpDatabase) -> Iterator[dg.MaterializeResult]:
    full = True if context.run.tags.get(SCOPE_TAG) == "full" else None
    with retried_on_outage(context):
        engine = erp.engine()
        client = zoho.client(engine, context.job_name)
        stats = sync_item_stock(client, engine, context.run_id, full=full)
    yield from report(context, stats, client)
