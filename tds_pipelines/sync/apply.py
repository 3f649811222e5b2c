"""Applying Zoho records to the ERP: one path, whatever brought the record (a listing, a detail GET, a webhook,
a replay, an import).

- `record_row`: a record as its row, or a `RecordError` saying why it cannot be stored.
- `write_rows`: rows upserted under the version guard; should the database refuse some, they are isolated
  (the batch split in halves, each in a savepoint, down to the refused rows) and returned with their reason
  while the rest is written.
- `apply_items`: claimed queue items applied per entity with those two, each item completed or failed in the
  transaction that wrote it. Costs no Zoho call.
- `drain`: claim -> apply until no item is ready or the time is up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Connection, Engine, case, func
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DataError, IntegrityError

from tds_pipelines import settings
from tds_pipelines.entities import BY_NAME, EntitySpec
from tds_pipelines.erp.db import QueuedJson, write_transaction
from tds_pipelines.erp.dead_letters import SYNC_REJECTED
from tds_pipelines.erp.queue import (
    WEBHOOK_DELETED,
    WEBHOOK_UNUSABLE,
    QueueItem,
    claim_ready,
    complete,
    fail,
    release,
)
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.erp.upsert import upsert_rows
from tds_pipelines.sync.transform import EntityRow, RecordError, to_row
from tds_pipelines.zoho.webhooks import Delivery, UnusableDelivery, decode_body, parse_delivery

log = logging.getLogger(__name__)

UNKNOWN = "unknown"  # the stats key of items whose entity cannot be told (an unusable body)
ERRORS_KEPT = 10
# Items per claim and transaction: each batch costs a few statements per entity (its staging table, COPY,
# INSERT ... ON CONFLICT), so larger batches amortise them; a refused row is still found in ~2*log2(batch)
# savepoint retries.
BATCH_SIZE = 2000


def record_row(
    spec: EntitySpec, record: object, synced_at: datetime, summary: dict | None = None, hashed: bool = True
) -> EntityRow:
    """`record` as its row (`to_row`); any failure, a bug in TDS included, is a RecordError with the reason:
    one record never stops a batch."""
    try:
        return to_row(spec, record, synced_at, summary=summary, hashed=hashed)
    except RecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever it is, the caller keeps the record with the reason
        source = summary if summary is not None else record
        zoho_id = source.get(spec.id_field) if isinstance(source, dict) else None
        reason = f"{type(exc).__name__}: {exc}"
        raise RecordError(spec.name, None if zoho_id is None else str(zoho_id), None, reason) from exc


def data_refusals(dialect: Dialect) -> tuple[type[BaseException], ...]:
    """The errors by which a database refuses data, wrapped by SQLAlchemy or raw from the driver (COPY)."""
    dbapi = dialect.dbapi
    return (DataError, IntegrityError, dbapi.DataError, dbapi.IntegrityError, ValueError, UnicodeError)


@dataclass
class WriteResult:
    """What `write_rows` did; `refused` holds the rows the database refused, each with the reason."""

    inserted: int = 0
    updated: int = 0
    stale: int = 0
    duplicates: int = 0
    written_ids: set[str] = field(default_factory=set)
    months: set[str] = field(default_factory=set)  # document months written (partition keys)
    refused: list[tuple[EntityRow, str]] = field(default_factory=list)


def write_rows(conn: Connection, spec: EntitySpec, rows: Sequence[EntityRow]) -> WriteResult:
    """Upsert `rows` into `spec`'s table in the caller's transaction (`erp.db.write_transaction`: savepoints
    need it on SQLite). When the database refuses the batch's data (a value it cannot hold, an ERP
    constraint) the batch is halved, each half in a savepoint, until the refused rows stand alone: they are
    returned with their reason, the others are written. Any other error (gone, no table) propagates: no row
    is to blame."""
    result = WriteResult()
    _write_isolating(conn, spec, list(rows), result, data_refusals(conn.dialect))
    return result


def _write_isolating(conn: Connection, spec: EntitySpec, rows: list, result: WriteResult, refusals) -> None:
    if not rows:
        return
    try:
        with conn.begin_nested():
            upserted = upsert_rows(conn, entity_tables[spec.name], rows)
    except refusals as exc:
        if len(rows) == 1:
            reason = f"{spec.name} record {rows[0].zoho_id}: the database refused it: {str(exc).splitlines()[0]}"
            log.warning("%s", reason)
            result.refused.append((rows[0], reason))
            return
        half = len(rows) // 2
        _write_isolating(conn, spec, rows[:half], result, refusals)
        _write_isolating(conn, spec, rows[half:], result, refusals)
        return
    result.inserted += upserted.inserted
    result.updated += upserted.updated
    result.stale += upserted.stale
    result.duplicates += upserted.duplicates
    result.written_ids.update(upserted.written_ids)
    if spec.date_field:
        start = settings.history_start()
        for row in rows:
            doc_date = row.values.get(spec.date_field)
            if row.zoho_id in upserted.written_ids and isinstance(doc_date, date) and doc_date >= start:
                result.months.add(doc_date.replace(day=1).isoformat())


# ------------------------------------------------------------------------------------------ queue items


@dataclass
class QueueStats:
    """What applying queue items did to one entity: Dagster's materialization metadata."""

    entity: str
    items: int = 0
    inserted: int = 0
    updated: int = 0
    stale: int = 0  # the ERP held a newer version (or the batch did)
    tombstoned: int = 0
    failed: int = 0  # to be tried again
    dead_lettered: int = 0  # after their last attempt
    unparseable: int = 0
    months: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.inserted + self.updated + self.tombstoned

    def add(self, other: QueueStats) -> None:
        for name in ("items", "inserted", "updated", "stale", "tombstoned", "failed", "dead_lettered", "unparseable"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.months |= other.months
        self.errors.extend(other.errors[: ERRORS_KEPT - len(self.errors)])

    def as_metadata(self) -> dict[str, object]:
        figures: dict[str, object] = {
            "items": self.items,
            "inserted": self.inserted,
            "updated": self.updated,
            "stale": self.stale,
            "tombstoned": self.tombstoned,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "unparseable_values": self.unparseable,
            "api_calls": 0,
        }
        if self.errors:
            figures["first_errors"] = "\n".join(self.errors)
        return figures

    def summary(self) -> str:
        return (
            f"{self.entity}: {self.items} items, inserted {self.inserted}, updated {self.updated}, "
            f"stale {self.stale}, tombstoned {self.tombstoned}, failed {self.failed}, "
            f"dead-lettered {self.dead_lettered}"
        )


def delivery_of(item: QueueItem) -> Delivery:
    """The delivery a queue item holds, read with `parse_delivery` whatever its event: a webhook's bare record
    (entity set by the receiver), an imported body, a sync rejection, or a replayed unusable delivery (the
    receiver keeps its body as ``{"body": <document, or the text that did not decode>}``)."""
    document = item.payload
    if item.event == WEBHOOK_UNUSABLE and isinstance(document, dict) and "body" in document:
        document = document["body"]
        if isinstance(document, str):
            document = decode_body(document.encode("utf-8"), (item.headers or {}).get("content-type"))
    event = "deleted" if item.event == WEBHOOK_DELETED else None
    return parse_delivery(document, entity=item.entity, event=event)


@dataclass
class _EntityPart:
    """One entity's share of a batch, transformed and ready to write."""

    spec: EntitySpec
    saves: list[EntityRow] = field(default_factory=list)
    deletions: list[EntityRow] = field(default_factory=list)
    bare_deletions: list[tuple[QueueItem, str]] = field(default_factory=list)  # deleted, content unusable
    item_of: dict[int, QueueItem] = field(default_factory=dict)  # id(row) -> its item
    unparseable: int = 0


@dataclass
class _Batch:
    """Claimed items turned into rows (`_prepare`, no database) for `_write_batch` to write."""

    items: Sequence[QueueItem]
    parts: dict[str, _EntityPart]
    failures: dict[int, str]  # item id -> why it cannot be applied
    entity_of: dict[int, str]


def apply_items(
    engine: Engine, items: Sequence[QueueItem], stats_by_entity: dict[str, QueueStats]
) -> dict[str, QueueStats]:
    """Apply claimed queue items to the ERP, per entity, with the pull's transform (`record_row`), bulk
    version-guarded upsert (`write_rows`) and rules; no Zoho call. In one transaction: the writes, COMPLETED
    for the items applied, a failed attempt (`erp.queue.fail`: FAILED, or DEAD_LETTER after the last) for
    each item that could not be (unusable body, unstorable record, refused by the database), with its reason.

    Rows are stored whole (``summary_hash`` None: the next pull finds them unchanged) with ``synced_at`` =
    the receipt. A deletion tombstones the row at the receipt and makes its version max(its version, the
    receipt), inserting the tombstone when the ERP never had the record: a late redelivery of an older
    version cannot revive it, a newer version does.

    Adds this batch's figures to `stats_by_entity` (entity -> QueueStats, created as needed; items whose
    entity cannot be told count under "unknown") and returns it. Should anything else fail, every item of
    the batch gets a failed attempt with that error (so a batch that always fails ends as dead letters, not
    in a loop) and the error propagates."""
    return _write_batch(engine, _prepare(items), stats_by_entity)


def _prepare(items: Sequence[QueueItem]) -> _Batch:
    """Each item's delivery read and its record turned into a row, grouped by entity; the failures noted."""
    batch = _Batch(items, {}, {}, {})
    for item in items:
        try:
            delivery = delivery_of(item)
        except Exception as exc:  # noqa: BLE001 - whatever it is, this item fails alone with the reason
            detail = str(exc) if isinstance(exc, UnusableDelivery) else f"{type(exc).__name__}: {exc}"
            batch.failures[item.id] = f"unusable: {detail}"
            batch.entity_of[item.id] = item.entity if item.entity in BY_NAME else UNKNOWN
            continue
        batch.entity_of[item.id] = delivery.entity
        part = batch.parts.get(delivery.entity) or batch.parts.setdefault(
            delivery.entity, _EntityPart(BY_NAME[delivery.entity])
        )
        _add_row(part, item, delivery, batch.failures)
    return batch


def _add_row(part: _EntityPart, item: QueueItem, delivery: Delivery, failures: dict[int, str]) -> None:
    # A delivery is the whole record: the next pull must find it unchanged (no summary_hash). A sync
    # rejection may hold an abridged list entry: its own hash stays, so the pull still fetches the details.
    hashed = item.event == SYNC_REJECTED
    try:
        row = record_row(part.spec, delivery.record, item.received_at, hashed=hashed)
    except RecordError as exc:
        if delivery.deleted:  # the deletion is what counts, not the record's content
            part.bare_deletions.append((item, delivery.zoho_id))
        else:
            failures[item.id] = str(exc)
        return
    part.unparseable += len(row.warnings)
    if delivery.record is item.payload and item.payload_text is not None:
        row.values["raw"] = QueuedJson(item.payload_text, item.id)
    if delivery.deleted:
        _as_tombstone(row, item.received_at)
    part.item_of[id(row)] = item
    (part.deletions if delivery.deleted else part.saves).append(row)


def _write_batch(engine: Engine, batch: _Batch, stats_by_entity: dict[str, QueueStats]) -> dict[str, QueueStats]:
    """Write a prepared batch in one transaction (see `apply_items`) and add its figures."""
    items, failures, stats = batch.items, dict(batch.failures), {}
    try:
        with write_transaction(engine) as conn:
            for name in sorted(batch.parts):  # one lock order for every run: parallel runs do not deadlock
                failures |= _write_entity(conn, batch.parts[name], stats.setdefault(name, QueueStats(name)))
            complete(conn, [item.id for item in items if item.id not in failures])
            dead = set(fail(conn, [(item, failures[item.id]) for item in items if item.id in failures]))
    except Exception as exc:
        with write_transaction(engine) as conn:
            fail(conn, [(item, f"the batch failed: {type(exc).__name__}: {exc}") for item in items])
        raise
    for item in items:
        entity = batch.entity_of[item.id]
        entity_stats = stats.setdefault(entity, QueueStats(entity))
        entity_stats.items += 1
        if item.id in dead:
            entity_stats.dead_lettered += 1
        elif item.id in failures:
            entity_stats.failed += 1
        if item.id in failures and len(entity_stats.errors) < ERRORS_KEPT:
            entity_stats.errors.append(f"queue item {item.id}: {failures[item.id]}")
    for name, entity_stats in stats.items():
        stats_by_entity.setdefault(name, QueueStats(name)).add(entity_stats)
    return stats_by_entity


def _write_entity(conn: Connection, part: _EntityPart, stats: QueueStats) -> dict[int, str]:
    """Write one entity's rows (saves, then deletions); returns the reason of each item that failed."""
    spec, item_of, failures = part.spec, part.item_of, {}
    stats.unparseable += part.unparseable
    saved = write_rows(conn, spec, part.saves)
    for row, reason in saved.refused:
        failures[item_of[id(row)].id] = reason
    stats.inserted += saved.inserted
    stats.updated += saved.updated
    stats.stale += saved.stale + saved.duplicates
    deleted = write_rows(conn, spec, part.deletions)
    stats.tombstoned += deleted.inserted + deleted.updated
    # A stored version newer than the deletion's (clocks differ), or a row the database refused to rewrite,
    # is still tombstoned: Zoho said the record is gone.
    bare_deletions = part.bare_deletions + [
        (item_of[id(row)], row.zoho_id) for row in part.deletions if row.zoho_id not in deleted.written_ids
    ]
    for zoho_id, item in {zoho_id: item for item, zoho_id in bare_deletions}.items():
        stats.tombstoned += _tombstone(conn, spec, zoho_id, item.received_at)
    stats.months |= saved.months | deleted.months
    return failures


def _as_tombstone(row: EntityRow, received_at: datetime) -> None:
    """The row of a deleted record: tombstoned at the receipt, versioned no older than the receipt."""
    version = row.values["zoho_last_modified_time"]
    row.values["deleted_in_zoho_at"] = received_at
    row.values["zoho_last_modified_time"] = max(version, received_at) if version else received_at


def _tombstone(conn: Connection, spec: EntitySpec, zoho_id: str, received_at: datetime) -> int:
    """Tombstone a stored row whatever its version, which becomes max(its version, the receipt)."""
    table = entity_tables[spec.name]
    version, synced_at = table.c.zoho_last_modified_time, table.c.synced_at
    return conn.execute(
        table.update()
        .where(table.c.zoho_id == zoho_id)
        .values(
            deleted_in_zoho_at=func.coalesce(table.c.deleted_in_zoho_at, received_at),
            zoho_last_modified_time=case((version > received_at, version), else_=received_at),
            synced_at=case((synced_at > received_at, synced_at), else_=received_at),
        )
    ).rowcount


def drain(
    engine: Engine,
    run_id: str,
    batch_size: int = BATCH_SIZE,
    max_seconds: float = 600.0,
    stats_by_entity: dict[str, QueueStats] | None = None,
) -> dict[str, QueueStats]:
    """Claim and apply batches of ready items for `run_id` until none is ready or `max_seconds` have passed
    (the batch under way finishes); returns the figures per entity.

    Pipelined: while a writer thread writes one batch (the database's time), this thread claims and
    transforms the next (Python's)."""
    stats_by_entity = {} if stats_by_entity is None else stats_by_entity
    deadline = time.monotonic() + max_seconds
    with ThreadPoolExecutor(1, thread_name_prefix="tds-drain-writer") as writer:
        writing = None
        while time.monotonic() < deadline:
            items = claim_ready(engine, batch_size, run_id)
            if not items:
                if writing is None:
                    break
                writing.result()  # then look again: its failures may be due at once, new items may have come
                writing = None
                continue
            batch = _prepare(items)
            if writing is not None:
                try:
                    writing.result()
                except BaseException:  # this batch will not be written: back to the queue, untried
                    with write_transaction(engine) as conn:
                        release(conn, [item.id for item in items])
                    raise
            writing = writer.submit(_write_batch, engine, batch, stats_by_entity)
        if writing is not None:
            writing.result()
    return stats_by_entity
