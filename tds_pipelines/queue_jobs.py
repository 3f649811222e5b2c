"""The jobs applying the webhook queue: drain it, replay dead letters then drain, process one item. No Zoho call.

Op jobs, not asset jobs: an asset job over the entity assets would run a pull. Like the pull, they record a
materialization of each entity asset they wrote (and of the document months written), with the figures.
"""

import time
from datetime import date

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine, select

from tds_pipelines.entities import BY_NAME
from tds_pipelines.erp.queue import COMPLETED, claim_item, get_item, peek_ready, release_held, replay
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.outages import retried_on_outage
from tds_pipelines.partitions import document_months
from tds_pipelines.resources import ErpDatabase
from tds_pipelines.run_limits import job_tags
from tds_pipelines.sync.apply import BATCH_SIZE, QueueStats, apply_items, delivery_of, drain

LINGER_POLL_SECONDS = 0.5
TOTALS = ("items", "inserted", "updated", "stale", "tombstoned", "failed", "dead_lettered")


class DrainConfig(dg.Config):
    batch_size: int = Field(default=BATCH_SIZE, description="Items claimed and applied per transaction")
    max_seconds: float = Field(default=600, description="No batch is claimed after this long; the sensor goes on")
    linger_seconds: float = Field(
        default=15,
        description="Once the queue is empty, keep watching it this long: webhooks arriving meanwhile are applied "
        "within a second instead of waiting for the sensor's next tick and a new run",
    )


class ReplayConfig(DrainConfig):
    """Which dead letters to put back (the filters combine; at least one is required)."""

    ids: list[int] | None = Field(default=None, description="Queue ids")
    all: bool = Field(default=False, description="Every dead letter")
    entity: str | None = Field(default=None, description="Dead letters of this entity (e.g. invoices)")
    error_contains: str | None = Field(default=None, description="Whose last error contains this text")


class SingleWebhookConfig(dg.Config):
    queue_id: int = Field(description="The tds_sync_queue id to process, due or not (a dead letter too)")


def record_materializations(
    context: dg.OpExecutionContext, stats_by_entity: dict[str, QueueStats], seconds: float
) -> dict[str, object]:
    """Log each entity's figures, a materialization of every entity asset written (and of each document month
    written), and the run's totals, which are returned."""
    months = set(document_months.get_partition_keys())  # up to now: future-dated documents have none
    written_by = {"written_by": f"{context.job_name} (webhooks)"}
    for name, stats in sorted(stats_by_entity.items()):
        context.log.info(stats.summary())
        for error in stats.errors:
            context.log.warning(error)
        if name not in BY_NAME or not stats.written:
            continue
        key = BY_NAME[name].asset_key
        context.log_event(dg.AssetMaterialization(asset_key=key, metadata=stats.as_metadata() | written_by))
        for month in sorted(stats.months & months):
            context.log_event(dg.AssetMaterialization(asset_key=key, partition=month, metadata=written_by))
    totals: dict[str, object] = {name: sum(getattr(s, name) for s in stats_by_entity.values()) for name in TOTALS}
    totals["seconds"] = round(seconds, 3)
    totals["entities_written"] = ", ".join(sorted(n for n, s in stats_by_entity.items() if s.written)) or "none"
    context.log.info("webhook queue: " + ", ".join(f"{name} {value}" for name, value in totals.items()))
    return totals


def _drain_and_report(context: dg.OpExecutionContext, engine: Engine, config: DrainConfig) -> dg.Output:
    if released := release_held(engine, context.run_id):
        context.log.info(f"{released} items this run's failed attempt held are back in the queue")
    started = time.monotonic()
    deadline, stats = started + config.max_seconds, {}
    idle_since = started
    while (now := time.monotonic()) < deadline:
        before = sum(s.items for s in stats.values())
        drain(engine, context.run_id, config.batch_size, deadline - now, stats)
        if sum(s.items for s in stats.values()) > before:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= config.linger_seconds:
            break
        else:
            time.sleep(LINGER_POLL_SECONDS)
    totals = record_materializations(context, stats, time.monotonic() - started)
    ready, _ = peek_ready(engine)
    totals["still_ready"] = ready  # left by the time bound, or arrived meanwhile: the sensor starts another run
    return dg.Output(None, metadata=totals)


@dg.op(out=dg.Out(dg.Nothing), description="Claim and apply ready queue items, batch by batch, until none is ready")
def apply_webhook_queue(context: dg.OpExecutionContext, config: DrainConfig, erp: ErpDatabase) -> dg.Output:
    with retried_on_outage(context):
        return _drain_and_report(context, erp.engine(), config)


@dg.op(out=dg.Out(dg.Nothing), description="Put dead letters back to PENDING, then apply the queue")
def replay_then_apply(context: dg.OpExecutionContext, config: ReplayConfig, erp: ErpDatabase) -> dg.Output:
    engine = erp.engine()
    try:
        count = replay(engine, config.ids, config.all, config.entity, config.error_contains)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"replayed {count} dead letters")
    return _drain_and_report(context, engine, config)


@dg.op(out=dg.Out(dg.Nothing), description="Apply one queue item, logging its row before and after")
def apply_one_webhook(context: dg.OpExecutionContext, config: SingleWebhookConfig, erp: ErpDatabase) -> dg.Output:
    engine = erp.engine()
    item = claim_item(engine, config.queue_id, context.run_id)
    if item is None:
        found = get_item(engine, config.queue_id)
        state = f"is {found.status}" if found else "does not exist"
        raise dg.Failure(description=f"queue item {config.queue_id} {state}: nothing to process")
    context.log.info(
        f"queue item {item.id}: event {item.event}, entity {item.entity}, zoho_id {item.zoho_id}, "
        f"received {item.received_at:%Y-%m-%d %H:%M:%S} UTC, {item.attempts} attempts so far"
        + (f", last error: {item.last_error}" if item.last_error else "")
    )
    try:
        delivery = delivery_of(item)
    except Exception:  # noqa: BLE001 - applying it below fails the item with the reason
        delivery = None
    if delivery:
        context.log.info(f"before: {_describe(engine, delivery.entity, delivery.zoho_id)}")
    started = time.monotonic()
    stats = apply_items(engine, [item], {})
    if delivery:
        context.log.info(f"after: {_describe(engine, delivery.entity, delivery.zoho_id)}")
    totals = record_materializations(context, stats, time.monotonic() - started)
    outcome = get_item(engine, item.id)
    if outcome.status != COMPLETED:
        retry = f"; next attempt at {outcome.next_attempt_at:%H:%M:%S} UTC" if outcome.next_attempt_at else ""
        raise dg.Failure(
            description=f"queue item {item.id} is {outcome.status} after attempt {outcome.attempts}: "
            f"{outcome.last_error}{retry}",
            metadata=totals,
        )
    return dg.Output(None, metadata=totals | {"status": outcome.status})


def _describe(engine: Engine, entity: str, zoho_id: str) -> str:
    """The stored row of a record (without raw), as a line of the log."""
    table = entity_tables[entity]
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.zoho_id == zoho_id)).mappings().first()
    if row is None:
        return f"{entity} {zoho_id}: not in the ERP"
    values = {name: value.isoformat() if isinstance(value, date) else value for name, value in row.items()}
    return f"{entity} {zoho_id}: " + ", ".join(f"{name}={value}" for name, value in values.items() if name != "raw")


@dg.job(
    executor_def=dg.in_process_executor,
    tags=job_tags("process_webhook_queue", calls_zoho=False),
    description="Apply the webhooks waiting in tds_sync_queue (no Zoho call)",
)
def process_webhook_queue():
    apply_webhook_queue()


@dg.job(
    executor_def=dg.in_process_executor,
    tags=job_tags("replay_dead_letters", calls_zoho=False),
    description="Put dead letters back in the queue (ids, all, entity, error_contains), then apply the queue",
)
def replay_dead_letters():
    replay_then_apply()


@dg.job(
    executor_def=dg.in_process_executor,
    tags=job_tags("process_single_webhook", calls_zoho=False),
    description="Apply one queue item (queue_id) with detailed logs",
)
def process_single_webhook():
    apply_one_webhook()


queue_jobs = [process_webhook_queue, replay_dead_letters, process_single_webhook]
