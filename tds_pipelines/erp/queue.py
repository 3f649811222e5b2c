"""The webhook queue in ``tds_sync_queue``: deliveries waiting to be applied, claimed in batches by any number of
runs at once, retried with backoff, dead-lettered after their last attempt, replayed by an operator.

An item goes PENDING -> PROCESSING (claimed by a run) -> COMPLETED; a failure makes it FAILED, ready again at
``next_attempt_at`` (exponential backoff), and DEAD_LETTER after its last attempt. `replay` puts dead letters
back to PENDING. Every failure is appended to ``error_history`` ({at, attempts, error, status}), which
retries and replays keep. Status changes are bulk statements: one per batch, whatever its size.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Connection,
    Engine,
    Text,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from tds_pipelines.erp.db import as_utc, utcnow, write_transaction
from tds_pipelines.erp.tables import DELIVERY_EVENTS, sync_queue
from tds_pipelines.zoho.webhooks import Delivery, UnusableDelivery, parse_delivery

PENDING, PROCESSING, COMPLETED, FAILED, DEAD_LETTER = "PENDING", "PROCESSING", "COMPLETED", "FAILED", "DEAD_LETTER"
WEBHOOK, WEBHOOK_DELETED, WEBHOOK_UNUSABLE, IMPORTED = "webhook", "webhook_deleted", "webhook_unusable", "imported"
# A run that died mid-batch leaves its items PROCESSING: after this long another run takes them over.
PROCESSING_LEASE = timedelta(minutes=15)
_CHUNK = 500  # ids per statement: far below SQLite's bound-parameter limit
_ERROR_CHARS = 4000  # a driver's error can carry a whole statement: the start says what went wrong
_DELIVERY = sync_queue.c.event.in_(DELIVERY_EVENTS)  # the predicate of ux_tds_sync_queue_delivery
q = sync_queue


@dataclass(frozen=True)
class QueueItem:
    """One row of the queue, as a claim (or a listing) returns it."""

    id: int
    status: str
    entity: str | None
    event: str | None
    zoho_id: str | None
    payload: object
    headers: dict | None
    attempts: int
    last_error: str | None
    received_at: datetime
    next_attempt_at: datetime | None
    run_id: str | None
    error_history: list | None
    # The payload as the database holds it (storable JSON): written as the row's raw, not encoded again.
    payload_text: str | None = None


_ITEM_COLUMNS = [
    cast(q.c.payload, Text).label("payload_text") if name == "payload_text" else q.c[name]
    for name in QueueItem.__dataclass_fields__
    if name != "payload"
]


def _item(row) -> QueueItem:
    values = row._asdict()
    times = {name: as_utc(values[name]) for name in ("received_at", "next_attempt_at")}
    text = values["payload_text"]
    return QueueItem(**values | times, payload=None if text is None else json.loads(text))


def _among(conn: Connection, ids: list[int]):
    """``id IN ids``: one array parameter on PostgreSQL, whatever the number of ids (a list on SQLite)."""
    if conn.dialect.name == "postgresql":
        return q.c.id == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
    return q.c.id.in_(ids)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed item is tried again: ``base * 2**(attempts - 1)`` seconds, at most
    `cap`, and DEAD_LETTER once `max_attempts` have failed."""

    max_attempts: int = 5
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """``TDS_WEBHOOK_MAX_ATTEMPTS`` (5), ``TDS_WEBHOOK_RETRY_SECONDS`` (30), ``TDS_WEBHOOK_RETRY_MAX_SECONDS``
        (3600)."""
        return cls(
            max_attempts=int(os.environ.get("TDS_WEBHOOK_MAX_ATTEMPTS") or cls.max_attempts),
            base_seconds=float(os.environ.get("TDS_WEBHOOK_RETRY_SECONDS") or cls.base_seconds),
            cap_seconds=float(os.environ.get("TDS_WEBHOOK_RETRY_MAX_SECONDS") or cls.cap_seconds),
        )

    def delay(self, attempts: int) -> timedelta:
        """The wait before the next try of an item that has failed `attempts` times."""
        return timedelta(seconds=min(self.cap_seconds, self.base_seconds * 2 ** min(attempts - 1, 32)))


# ------------------------------------------------------------------------------------------------ enqueue


def _insert(conn: Connection):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(q)


def _stored_once(conn: Connection, rows: list[dict]) -> set[str]:
    """INSERT the rows unless a delivery with the same body_hash is stored; the body hashes inserted."""
    statement = (
        _insert(conn)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[q.c.body_hash], index_where=_DELIVERY)
        .returning(q.c.body_hash)
    )
    return set(conn.execute(statement).scalars())


def enqueue_delivery(conn: Connection, delivery: Delivery, received_at: datetime | None = None) -> tuple[int, bool]:
    """Queue a parsed delivery as PENDING (event ``webhook`` or ``webhook_deleted``), once per `delivery.key`:
    a redelivery of the same version is not stored again. Runs in the caller's transaction; returns the
    queue id and whether the delivery was stored already (a duplicate)."""
    at = as_utc(received_at) or utcnow()
    row = {
        "status": PENDING,
        "entity": delivery.entity,
        "event": WEBHOOK_DELETED if delivery.deleted else WEBHOOK,
        "zoho_id": delivery.zoho_id,
        "payload": delivery.record,
        "body_hash": delivery.key,
        "attempts": 0,
        "received_at": at,
        "next_attempt_at": at,
    }
    duplicate = not _stored_once(conn, [row])
    stored = select(q.c.id).where(q.c.body_hash == delivery.key, _DELIVERY)
    return conn.execute(stored).scalar_one(), duplicate


def _document_hash(document: object) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace): the same document always hashes the same."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def import_deliveries(engine: Engine, lines: Iterable[str]) -> tuple[int, int, int]:
    """Store the old service's exported deliveries (one JSON document per line, a webhook body such as
    ``{"invoice": {...}}``) as DEAD_LETTER items of event ``imported``, payload = the document, so that
    `replay` applies them. Each document is stored once (body_hash = sha256 of its canonical JSON): importing
    a file again stores nothing new. A line that is not a usable delivery (not JSON, no known record) is kept
    too, with the reason as its last_error. Blank lines are skipped.

    Returns (stored, duplicates, unusable): usable documents newly stored, lines stored before (in the queue
    or earlier in `lines`), unusable lines newly stored."""
    stored = duplicates = unusable = 0
    for chunk in _chunks((line for line in lines if line.strip()), _CHUNK):
        # Repeats within a chunk are told apart here; across chunks, the committed rows tell.
        by_hash = {row["body_hash"]: row for row in map(_imported_row, chunk)}
        duplicates += len(chunk) - len(by_hash)
        rows = list(by_hash.values())
        with write_transaction(engine) as conn:
            inserted = _stored_once(conn, rows)
        for row in rows:
            if row["body_hash"] not in inserted:
                duplicates += 1
            elif row["last_error"]:
                unusable += 1
            else:
                stored += 1
    return stored, duplicates, unusable


def _imported_row(line: str) -> dict:
    entity = zoho_id = error = None
    try:
        document = json.loads(line)
    except ValueError as exc:
        document, error = line.rstrip("\r\n"), f"unusable: the line is not JSON: {exc}"
    else:
        try:
            delivery = parse_delivery(document)
            entity, zoho_id = delivery.entity, delivery.zoho_id
        except UnusableDelivery as exc:
            error = f"unusable: {exc}"
    now = utcnow()
    return {
        "status": DEAD_LETTER,
        "entity": entity,
        "event": IMPORTED,
        "zoho_id": zoho_id,
        "payload": document,
        "body_hash": _document_hash(document),
        "attempts": 0,
        "last_error": error,
        "received_at": now,
        "next_attempt_at": None,
    }


# -------------------------------------------------------------------------------------------------- claim


def _ready_conditions(now: datetime, lease: timedelta) -> list:
    """What a run may take, in the order it takes them: items a dead run left behind, retries that are due,
    then new deliveries. Each is one range of ix_tds_sync_queue_status_next, read in order: a claim costs
    the same whatever the backlog."""
    return [
        (q.c.status == PROCESSING) & (q.c.locked_at < now - lease),
        (q.c.status == FAILED) & (q.c.next_attempt_at <= now),
        (q.c.status == PENDING) & (q.c.next_attempt_at <= now),
    ]


def claim_ready(engine: Engine, limit: int, run_id: str, lease: timedelta = PROCESSING_LEASE) -> list[QueueItem]:
    """Claim up to `limit` ready items for `run_id`, oldest first, and return them marked PROCESSING.

    Ready: PENDING or FAILED with next_attempt_at reached, or PROCESSING for longer than `lease` (its run
    died). On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so several runs drain at once and
    never take the same item; SQLite serialises claims with ``BEGIN IMMEDIATE``. Commits before returning."""
    now = utcnow()
    with write_transaction(engine) as conn:
        ids: list[int] = []
        for condition in _ready_conditions(now, lease):
            if len(ids) >= limit:
                break
            pick = (
                select(q.c.id)
                .where(condition)
                .order_by(q.c.next_attempt_at, q.c.id)
                .limit(limit - len(ids))
                .with_for_update(skip_locked=True)
            )
            ids.extend(conn.scalars(pick))
        return _mark_processing(conn, ids, run_id, now)


def claim_item(engine: Engine, item_id: int, run_id: str) -> QueueItem | None:
    """Claim one item by id, due or not, for `run_id` (an operator's single run: a dead letter included);
    None when it is unknown, COMPLETED, or PROCESSING in another run."""
    now = utcnow()
    with write_transaction(engine) as conn:
        claimable = q.c.status.in_([PENDING, FAILED, DEAD_LETTER])
        found = conn.execute(select(q.c.id).where(q.c.id == item_id, claimable).with_for_update()).scalar()
        claimed = _mark_processing(conn, [found] if found is not None else [], run_id, now)
    return claimed[0] if claimed else None


def _mark_processing(conn: Connection, ids: list[int], run_id: str, now: datetime) -> list[QueueItem]:
    if not ids:
        return []
    marked = conn.execute(
        q.update()
        .where(_among(conn, ids))
        .values(status=PROCESSING, locked_at=now, run_id=run_id)
        .returning(*_ITEM_COLUMNS)
    )
    by_id = {item.id: item for item in map(_item, marked)}
    return [by_id[i] for i in ids]


def peek_ready(engine: Engine, bound: int = 1000) -> tuple[int, int | None]:
    """How many items are ready (counted up to `bound`) and the highest id among those counted: one bounded
    read for the sensor, whose transaction ends before this returns."""
    now = utcnow()
    ready = select(q.c.id).where(or_(*_ready_conditions(now, PROCESSING_LEASE))).limit(bound).subquery()
    with engine.connect() as conn:
        count, newest = conn.execute(select(func.count(), func.max(ready.c.id))).one()
        conn.rollback()
    return count, newest


# ------------------------------------------------------------------------------------------------ outcome


def complete(conn: Connection, ids: Sequence[int]) -> int:
    """Mark the claimed items COMPLETED, in the caller's transaction (the one that applied them); returns how
    many were still PROCESSING."""
    return _settle(conn, ids, status=COMPLETED, completed_at=utcnow(), locked_at=None)


def release(conn: Connection, ids: Sequence[int]) -> int:
    """Hand claimed items back untried, in the caller's transaction: PENDING, no attempt counted (a run that
    stops before applying what it claimed); returns how many were still PROCESSING."""
    return _settle(conn, ids, status=PENDING, locked_at=None, run_id=None)


def release_held(engine: Engine, run_id: str) -> int:
    """Hand back untried what `run_id` still holds: called as its drain starts, when anything held is an earlier
    attempt's of a retried step (the database lost mid-batch), which died; otherwise it would wait out the
    lease. Returns how many."""
    with write_transaction(engine) as conn:
        held = (q.c.status == PROCESSING) & (q.c.run_id == run_id)
        return conn.execute(q.update().where(held).values(status=PENDING, locked_at=None, run_id=None)).rowcount


def _settle(conn: Connection, ids: Sequence[int], **values) -> int:
    """Set `values` on those of `ids` still PROCESSING; returns how many."""
    done = 0
    for chunk in _chunks(list(ids), _CHUNK):
        done += conn.execute(q.update().where(_among(conn, chunk), q.c.status == PROCESSING).values(**values)).rowcount
    return done


def fail(conn: Connection, failures: Sequence[tuple[QueueItem, str]], policy: RetryPolicy | None = None) -> list[int]:
    """Record a failed attempt of each claimed item with its error, in the caller's transaction: attempts + 1,
    last_error, the failure appended to error_history, and FAILED until ``next_attempt_at`` (backoff), or
    DEAD_LETTER after the policy's last attempt (default: `RetryPolicy.from_env`). Returns the ids
    dead-lettered."""
    policy = policy or RetryPolicy.from_env()
    now = utcnow()
    changes, dead = {}, []
    for item, error in failures:
        attempts, error = item.attempts + 1, error[:_ERROR_CHARS]
        status = DEAD_LETTER if attempts >= policy.max_attempts else FAILED
        if status == DEAD_LETTER:
            dead.append(item.id)
        entry = {"at": now.isoformat(), "attempts": attempts, "error": error, "status": status}
        changes[item.id] = {
            "status": status,
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": now + policy.delay(attempts) if status == FAILED else None,
            "locked_at": None,
            "error_history": [*(item.error_history or []), entry],
        }
    _update_each(conn, changes, q.c.status == PROCESSING)
    return dead


def _update_each(conn: Connection, changes: dict[int, dict], guard=None) -> None:
    """One UPDATE per chunk of rows, each row with its own values (``col = CASE id WHEN ... END``)."""
    for chunk in _chunks(list(changes.items()), _CHUNK):
        ids = [item_id for item_id, _ in chunk]
        values = {
            name: case({item_id: _bound(conn, name, row[name]) for item_id, row in chunk}, value=q.c.id)
            for name in chunk[0][1]
        }
        where = _among(conn, ids) if guard is None else _among(conn, ids) & guard
        conn.execute(q.update().where(where).values(values))


def _bound(conn: Connection, name: str, value):
    """A value for a CASE branch, typed as its column: PostgreSQL cannot infer json or timestamptz from a
    CASE of parameters (SQLite needs no cast, and would read CAST(... AS JSON) as a number)."""
    bound = literal(value, q.c[name].type)
    return cast(bound, q.c[name].type) if conn.dialect.name == "postgresql" else bound


# ----------------------------------------------------------------------------------------- dead letters


def _dead_letter_filter(ids, entity, error_contains) -> list:
    filters = [q.c.status == DEAD_LETTER]
    if ids is not None:
        filters.append(q.c.id.in_(list(ids)))
    if entity is not None:
        filters.append(q.c.entity == entity)
    if error_contains:
        filters.append(q.c.last_error.icontains(error_contains, autoescape=True))
    return filters


def replay(
    engine: Engine,
    ids: Sequence[int] | None = None,
    all: bool = False,
    entity: str | None = None,
    error_contains: str | None = None,
) -> int:
    """Put DEAD_LETTER items back to PENDING, due now: those among `ids`, of `entity`, whose last error
    contains `error_contains` (case-insensitive), every one with ``all=True``; the filters combine. Their
    history is kept: the last error moves into error_history (with the attempts it took), attempts restart
    at 0. auto_retried_at is cleared: a replayed item that dies again gets its automatic retry again. Returns
    how many were replayed. Refuses to run without any filter."""
    if ids is None and not all and entity is None and not error_contains:
        raise ValueError("say which dead letters to replay: ids, entity, error_contains, or all=True")
    now = utcnow()
    filters = _dead_letter_filter(ids, entity, error_contains)
    with write_transaction(engine) as conn:
        picked = select(q.c.id, q.c.attempts, q.c.last_error, q.c.error_history).where(*filters).with_for_update()
        changes = {row.id: revived(row, now, "replayed") | {"auto_retried_at": None} for row in conn.execute(picked)}
        _update_each(conn, changes)
    return len(changes)


def revived(row, now: datetime, how: str) -> dict:
    """The changes putting a dead letter `row` (attempts, last_error, error_history) back to PENDING, due now:
    attempts restart at 0, its last error moves into error_history under the status `how`."""
    return {
        "status": PENDING,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": now,
        "locked_at": None,
        "run_id": None,
        "completed_at": None,
        "error_history": [
            *(row.error_history or []),
            {"at": now.isoformat(), "attempts": row.attempts, "error": row.last_error, "status": how},
        ],
    }


def get_item(engine: Engine, item_id: int) -> QueueItem | None:
    """One queue item by id, whatever its status (None when there is none)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_ITEM_COLUMNS).where(q.c.id == item_id)).first()
    return _item(row) if row else None


def list_dead_letters(
    engine: Engine, limit: int = 100, entity: str | None = None, error_contains: str | None = None
) -> list[QueueItem]:
    """The newest `limit` dead letters (of `entity`, whose last error contains `error_contains`), newest first:
    what `replay` with the same filters would put back."""
    query = (
        select(*_ITEM_COLUMNS)
        .where(*_dead_letter_filter(None, entity, error_contains))
        .order_by(q.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_item(row) for row in conn.execute(query)]


def queue_counts(engine: Engine) -> dict[str, int | float | None]:
    """Items per status (every status present, 0 included) and ``oldest_pending_seconds``: the age of the
    oldest item still to apply (PENDING or FAILED), None when there is none."""
    counts: dict[str, int | float | None] = dict.fromkeys((PENDING, PROCESSING, COMPLETED, FAILED, DEAD_LETTER), 0)
    oldest = None
    query = select(q.c.status, func.count(), func.min(q.c.received_at)).group_by(q.c.status)
    with engine.connect() as conn:
        for status, count, first in conn.execute(query):
            counts[status] = count
            if status in (PENDING, FAILED) and first is not None:
                oldest = min(filter(None, (oldest, as_utc(first))))
    counts["oldest_pending_seconds"] = (utcnow() - oldest).total_seconds() if oldest else None
    return counts


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
