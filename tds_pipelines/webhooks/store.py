"""Where the receiver puts deliveries: one row of ``tds_sync_queue`` each, committed before Zoho hears 200.

PostgreSQL goes through a few asyncpg connections kept open (no blocking call on the event loop, no
connection set-up per request), each written by its own task that inserts whatever deliveries are waiting in
one statement (group commit: under a burst a statement carries several, alone a delivery goes at once);
SQLite, the demo's store, through SQLAlchemy in a worker thread. Both store a delivery once per
``body_hash`` (the partial unique index ``ux_tds_sync_queue_delivery``) and answer which row holds it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from tds_pipelines.erp.db import json_dumps, make_engine, normalize_url, utcnow, write_transaction
from tds_pipelines.erp.tables import DELIVERY_EVENTS, sync_queue

log = logging.getLogger(__name__)

# The unique index's own predicate, as literal SQL: ON CONFLICT must name it to use a partial index (SQLite
# matches it textually, so no bound parameters).
DELIVERY_PREDICATE = "event IN ({})".format(", ".join(f"'{event}'" for event in DELIVERY_EVENTS))
# Connections held by one receiver: a few per core keep PostgreSQL's group commit busy.
POOL_SIZE = 8
# Deliveries in one INSERT at most: a burst is written in a few statements, none holding its rows long.
BATCH_MAX = 64
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 10

# Insert unless the delivery is stored already, answering (id, duplicate). The second branch cannot see a
# row a concurrent request committed after this statement began: `store` then asks again.
INSERT_DELIVERY = f"""
WITH inserted AS (
    INSERT INTO tds_sync_queue (status, entity, event, zoho_id, payload, headers, body_hash, attempts,
                                last_error, received_at, next_attempt_at)
    VALUES ($1, $2, $3, $4, $5::jsonb #> $9::text[], $6::json, $7, 0, $8, now(), now())
    ON CONFLICT (body_hash) WHERE {DELIVERY_PREDICATE} DO NOTHING
    RETURNING id
)
SELECT id, false AS duplicate FROM inserted
UNION ALL
SELECT id, true FROM tds_sync_queue WHERE body_hash = $7 AND {DELIVERY_PREDICATE}
LIMIT 1
"""
# The same for a batch (arrays of the same arguments, distinct body_hash), answering (n, id, duplicate) for
# each: a row already stored is found by the subquery; one committed concurrently is not (id NULL).
INSERT_DELIVERIES = f"""
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[])
        WITH ORDINALITY AS b(status, entity, event, zoho_id, payload, headers, body_hash, last_error, path, n)
), inserted AS (
    INSERT INTO tds_sync_queue (status, entity, event, zoho_id, payload, headers, body_hash, attempts,
                                last_error, received_at, next_attempt_at)
    SELECT status, entity, event, zoho_id,
           CASE WHEN path IS NULL THEN payload::jsonb ELSE payload::jsonb -> path END,
           headers::json, body_hash, 0, last_error, now(), now()
    FROM batch ORDER BY n
    ON CONFLICT (body_hash) WHERE {DELIVERY_PREDICATE} DO NOTHING
    RETURNING id, body_hash
)
SELECT b.n, i.id IS NULL AS duplicate, coalesce(
    i.id, (SELECT q.id FROM tds_sync_queue q WHERE q.body_hash = b.body_hash AND q.{DELIVERY_PREDICATE} LIMIT 1)
) AS id
FROM batch b LEFT JOIN inserted i ON i.body_hash = b.body_hash
"""


class QueueUnavailable(Exception):
    """The database cannot take the delivery now (down, refusing connections, not migrated): Zoho retries."""


@dataclass(frozen=True)
class QueueRow:
    """What one delivery becomes in ``tds_sync_queue``."""

    status: str  # PENDING, or DEAD_LETTER for a body that cannot be applied
    event: str
    body_hash: str
    payload: object
    headers: dict
    entity: str | None = None
    zoho_id: str | None = None
    last_error: str | None = None
    # The body as received, when PostgreSQL may read the payload from it (at `payload_path`) instead of
    # json_dumps encoding it again: an encode is an eighth of a delivery's cost. What jsonb refuses (a NUL or
    # lone surrogate escape, NaN) is stored through json_dumps instead, which cleans it.
    payload_text: str | None = None
    payload_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stored:
    id: int
    duplicate: bool  # the delivery was stored before: `id` is that row


def insert_arguments(row: QueueRow) -> tuple:
    """The parameters of INSERT_DELIVERY for `row`."""
    return (
        row.status,
        row.entity,
        row.event,
        row.zoho_id,
        row.payload_text or json_dumps(row.payload),
        json.dumps(row.headers),
        row.body_hash,
        row.last_error,
        row.payload_path if row.payload_text else (),
    )


def asyncpg_dsn(url: str) -> str:
    """`url` as libpq-style DSN for asyncpg (SQLAlchemy's ``postgresql+psycopg2://`` names a driver)."""
    return make_url(normalize_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresQueue:
    """The queue on PostgreSQL, through POOL_SIZE asyncpg connections working in the TDS schema.

    `store` hands the delivery to the writers (one task per connection) and waits for its commit; a free
    writer takes every delivery waiting (up to BATCH_MAX) into one INSERT. Each connection is made on first
    use and again after a failure, so a receiver started while the database is down answers 503 until it is
    back, then works. The connections take turns through a queue rather than asyncpg's Pool, whose acquire
    and release (a shielded task each, a reset query by default) cost ~20 us a statement."""

    def __init__(self, url: str, schema: str) -> None:
        self._dsn = asyncpg_dsn(url)
        self._settings = {"search_path": schema, "application_name": "tds-webhooks"}
        self._idle: asyncio.Queue[asyncpg.Connection | None] = asyncio.Queue()
        for _ in range(POOL_SIZE):
            self._idle.put_nowait(None)  # not connected yet
        self._waiting: asyncio.Queue[tuple[QueueRow, asyncio.Future]] = asyncio.Queue()
        self._writers: list[asyncio.Task] = []

    async def store(self, row: QueueRow) -> Stored:
        """Insert `row` unless its body_hash is stored; returns the row holding it, once committed."""
        if not self._writers:
            self._writers = [asyncio.create_task(self._write()) for _ in range(POOL_SIZE)]
        answer = asyncio.get_running_loop().create_future()
        self._waiting.put_nowait((row, answer))
        return await answer

    async def _write(self) -> None:
        while True:
            batch = [await self._waiting.get()]
            while len(batch) < BATCH_MAX and not self._waiting.empty():
                batch.append(self._waiting.get_nowait())
            answers = await self._store_batch([row for row, _ in batch])
            for (_, future), answer in zip(batch, answers, strict=True):
                if future.done():  # its request has gone
                    continue
                if isinstance(answer, Exception):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)

    async def _store_batch(self, rows: list[QueueRow]) -> list[Stored | Exception]:
        """Store `rows` in one statement, answering each with its row or the error that kept it out. Twins
        in the batch share the first one's row; a row the statement cannot settle (a body jsonb refuses as
        sent, a twin committed concurrently) goes through `_store_one`."""
        first: dict[str, int] = {}
        for n, row in enumerate(rows):
            first.setdefault(row.body_hash, n)
        distinct = [rows[n] for n in first.values()]
        found: dict[str, Stored | Exception] = {}
        if len(distinct) > 1:
            try:
                try:
                    found = await self._insert_batch(distinct)
                except asyncpg.DataError:  # a body jsonb refuses as sent: all re-encoded (and cleaned) once
                    found = await self._insert_batch([replace(row, payload_text=None) for row in distinct])
            except asyncpg.DataError:
                pass  # each on its own
            except QueueUnavailable as exc:
                return [exc] * len(rows)
        for row in distinct:
            if row.body_hash not in found:
                try:
                    found[row.body_hash] = await self._store_one(row)
                except QueueUnavailable as exc:
                    found[row.body_hash] = exc
        answers = [found[row.body_hash] for row in rows]
        return [
            Stored(answer.id, True) if isinstance(answer, Stored) and first[row.body_hash] != n else answer
            for n, (row, answer) in enumerate(zip(rows, answers, strict=True))
        ]

    async def _insert_batch(self, rows: list[QueueRow]) -> dict[str, Stored]:
        """INSERT_DELIVERIES for `rows` (distinct body_hash): the row now holding each, by body_hash."""
        columns = list(zip(*(insert_arguments(row) for row in rows), strict=True))
        columns[-1] = [path[0] if path else None for path in columns[-1]]
        return {
            rows[n - 1].body_hash: Stored(stored_id, duplicate)
            for n, duplicate, stored_id in await self._run("fetch", INSERT_DELIVERIES, *columns)
            if stored_id is not None
        }

    async def _store_one(self, row: QueueRow) -> Stored:
        for _ in range(3):  # a concurrent twin committing mid-statement hides its row from one attempt
            try:
                found = await self._run("fetchrow", INSERT_DELIVERY, *insert_arguments(row))
            except asyncpg.DataError as exc:
                if row.payload_text is None:
                    raise QueueUnavailable(type(exc).__name__) from None
                row = replace(row, payload_text=None)
                continue
            if found is not None:
                return Stored(found["id"], found["duplicate"])
        raise QueueUnavailable("the delivery was neither stored nor found (concurrent redeliveries)")

    async def close(self) -> None:
        for writer in self._writers:
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        while not self._idle.empty():
            conn = self._idle.get_nowait()
            if conn is not None:
                await conn.close()

    async def _run(self, method: str, query: str, *args):
        try:
            return await self._on_a_connection(method, query, *args)
        except asyncpg.DataError:
            raise  # the values, not the database: the caller decides
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The class and message say what is wrong; asyncpg's messages never carry the password.
            log.warning("the queue database is unavailable: %s: %s", type(exc).__name__, exc)
            raise QueueUnavailable(type(exc).__name__) from None

    async def _on_a_connection(self, method: str, query: str, *args):
        conn = await self._idle.get()
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings=self._settings)
            result = await getattr(conn, method)(query, *args, timeout=STATEMENT_TIMEOUT_SECONDS)
        except asyncpg.PostgresError:
            self._idle.put_nowait(conn)  # the server refused the statement: the connection is sound
            raise
        except BaseException:
            if conn is not None:  # broken, timed out or cancelled mid-statement: start afresh next time
                conn.terminate()
            self._idle.put_nowait(None)
            raise
        self._idle.put_nowait(conn)
        return result


class SqliteQueue:
    """The queue in the demo's SQLite file: SQLAlchemy in a worker thread, one writer at a time."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)

    async def store(self, row: QueueRow) -> Stored:
        """Insert `row` unless its body_hash is stored; returns the row holding it, once committed."""
        return await self._in_thread(self._store, row)

    async def close(self) -> None:
        self._engine.dispose()

    async def _in_thread(self, call, *args):
        try:
            return await run_in_threadpool(call, *args)
        except DBAPIError as exc:
            log.warning("the queue database is unavailable: %s", type(exc.orig).__name__)
            raise QueueUnavailable(type(exc.orig).__name__) from None

    def _store(self, row: QueueRow) -> Stored:
        now = utcnow()
        statement = (
            sqlite_insert(sync_queue)
            .values(
                status=row.status,
                entity=row.entity,
                event=row.event,
                zoho_id=row.zoho_id,
                payload=row.payload,
                headers=row.headers,
                body_hash=row.body_hash,
                attempts=0,
                last_error=row.last_error,
                received_at=now,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(index_elements=["body_hash"], index_where=text(DELIVERY_PREDICATE))
            .returning(sync_queue.c.id)
        )
        with write_transaction(self._engine) as conn:  # BEGIN IMMEDIATE: no twin can slip in between
            new_id = conn.execute(statement).scalar()
            if new_id is not None:
                return Stored(new_id, False)
            existing = select(sync_queue.c.id).where(sync_queue.c.body_hash == row.body_hash, text(DELIVERY_PREDICATE))
            return Stored(conn.execute(existing).scalar_one(), True)
