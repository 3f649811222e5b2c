"""Bulk, version-guarded writes of Zoho rows into the ERP tables, inside the caller's transaction.

The rule (DESIGN §3 Versions): a stored row is replaced only by a version at least as new
(``zoho_last_modified_time`` compared as UTC instants); when either side has no version, the later arrival
(``synced_at``) wins. A write that passes the guard also clears a tombstone and replaces the row's children.
A stale row changes nothing, children included, and keeps its tombstone if it has one. A written row's
``written_at`` is the database's clock at the write (SQLite: this machine's), whatever the caller says.

PostgreSQL: rows are COPYed (CSV) into the session's staging table, then ``INSERT ... SELECT ... ON CONFLICT
DO UPDATE ... WHERE <guard> RETURNING`` writes them in one statement; a ``raw`` that the webhook queue holds
already is copied from the queue's row, not sent again. Children are COPYed into their staging table after
the written parents' old children are deleted, then inserted with their ``raw`` taken from the parent's.
SQLite (the demo default): the same rule, one statement per row.

Every function takes a SQLAlchemy ``Connection`` already in a transaction (``engine.begin()``) and never
commits: the caller advances its cursor in that same transaction.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    Connection,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    select,
    text,
)
from sqlalchemy.dialects import sqlite

from tds_pipelines.entities import child_tables
from tds_pipelines.erp.db import JsonText, QueuedJson, as_utc, json_dumps
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, item_stock, metadata, sync_queue

_SQLITE_CHUNK = 500  # below SQLite's bound-parameter limit
_temp_names = itertools.count(1)


class Row(Protocol):
    """What upsert_rows needs of a row (tds_pipelines.sync.transform.EntityRow is one)."""

    zoho_id: str
    values: dict[str, Any]
    children: dict[str, list[dict[str, Any]]]


@dataclass
class UpsertResult:
    """What an upsert did: inserted + updated + stale + duplicates == rows given."""

    inserted: int = 0
    updated: int = 0
    stale: int = 0  # skipped by the version guard: the ERP holds a newer version
    duplicates: int = 0  # same id twice in the batch: only the newest was written
    written_ids: list[str] = field(default_factory=list)
    children_written: int = 0


class KnownVersion(NamedTuple):
    """What the ERP holds for an id: the sync engine's change test reads it."""

    version: datetime | None
    summary_hash: str | None
    tombstoned: bool


def resolve_table(table: Table | str) -> Table:
    """An entity table from a Table, an entity name (``invoices``, ``item_stock``) or a table name."""
    if isinstance(table, Table):
        return table
    if table in entity_tables:
        return entity_tables[table]
    if table in ("item_stock", item_stock.name):
        return item_stock
    if table in metadata.tables:
        return metadata.tables[table]
    raise KeyError(f"unknown ERP table {table!r}")


def _replaces(new: Row, old: Row) -> bool:
    """The guard, in Python: does `new` replace `old`?"""
    new_version = as_utc(new.values.get("zoho_last_modified_time"))
    old_version = as_utc(old.values.get("zoho_last_modified_time"))
    if new_version is not None and old_version is not None:
        return new_version >= old_version
    return as_utc(new.values["synced_at"]) >= as_utc(old.values["synced_at"])


def newest_per_id(rows: Iterable[Row]) -> tuple[list[Row], int]:
    """The batch with one row per zoho_id (the newest by the guard's rule), and how many were dropped."""
    kept: dict[str, Row] = {}
    count = 0
    for row in rows:
        count += 1
        current = kept.get(row.zoho_id)
        if current is None or _replaces(row, current):
            kept[row.zoho_id] = row
    return list(kept.values()), count - len(kept)


def upsert_rows(conn: Connection, table: Table | str, rows: Sequence[Row]) -> UpsertResult:
    """Write `rows` into `table` (and their children) under the version guard; never commits.

    Rows with the same zoho_id are collapsed to the newest first. Returns the counts and the ids written."""
    table = resolve_table(table)
    batch, duplicates = newest_per_id(rows)
    # One lock order for every writer (a sync page and a webhook batch may share ids): no deadlocks.
    batch.sort(key=lambda row: row.zoho_id)
    result = UpsertResult(duplicates=duplicates)
    if not batch:
        return result
    for row in batch:
        if row.values.get("zoho_id") != row.zoho_id:
            raise ValueError(f"{table.name}: row zoho_id {row.zoho_id!r} differs from its values' zoho_id")
    if conn.dialect.name == "postgresql":
        written = _upsert_postgres(conn, table, batch)
    else:
        written = _upsert_sqlite(conn, table, batch)
    for zoho_id, inserted in written:
        result.written_ids.append(zoho_id)
        if inserted:
            result.inserted += 1
        else:
            result.updated += 1
    result.stale = len(batch) - len(written)
    by_id = {row.zoho_id: row for row in batch}
    result.children_written = _replace_children(conn, table, [by_id[zoho_id] for zoho_id, _ in written])
    return result


# ---------------------------------------------------------------------------------------------- PostgreSQL


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _csv_field(value: Any) -> str:
    """One CSV field for COPY: NULL is the unquoted empty field, every string is quoted."""
    if value is None:
        return ""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        return '"' + value.replace('"', '""') + '"'
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return '"' + json_dumps(value).replace('"', '""') + '"'


def _quoted(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    return '"' + value.replace('"', '""') + '"'


def _text_field(value: Any) -> str:
    return _quoted(value) if value.__class__ is str else _csv_field(value)


def _number_field(value: Any) -> str:
    return str(value) if value.__class__ in (Decimal, int) else _csv_field(value)


def _json_field(value: Any) -> str:
    if value is None:
        return ""
    return _quoted(value if isinstance(value, JsonText) else json_dumps(value))


def _field_writer(column: Column | None):
    """A fast CSV writer for the column's type (the generic one when the type or value is unexpected)."""
    if column is None:
        return _csv_field
    if isinstance(column.type, JSON):
        return _json_field
    if isinstance(column.type, String):
        return _text_field
    if isinstance(column.type, Numeric | Integer) and not isinstance(column.type, Boolean):
        return _number_field
    return _csv_field


def copy_rows(
    conn: Connection,
    table_name: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    like: Table | None = None,
) -> int:
    """COPY `rows` (tuples in `columns` order) into `table_name` through the connection's own cursor.

    CSV format: every string is quoted with its quotes doubled, so tabs, newlines, backslashes and any
    UTF-8 text pass as they are; NULL is the unquoted empty field; NUL characters are dropped. `like` (the
    table whose columns these are) picks a faster writer per column type."""
    writers = [_field_writer(like.c[c] if like is not None and c in like.c else None) for c in columns]
    counter = itertools.count()

    def lines():
        # Batches of encoded rows, produced while the server parses the previous ones.
        batch: list[str] = []
        for values in rows:
            next(counter)
            batch.append(",".join([("" if v is None else w(v)) for w, v in zip(writers, values, strict=True)]))
            if len(batch) == 500:
                batch.append("")
                yield "\n".join(batch)
                batch = []
        if batch:
            batch.append("")
            yield "\n".join(batch)

    column_list = ", ".join(_q(conn, c) for c in columns)
    with conn.connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {table_name} ({column_list}) FROM STDIN WITH (FORMAT csv)", _Stream(lines()))
    return next(counter)


class _Stream:
    """A read()-able view of an iterator of strings: COPY pulls from it chunk by chunk."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self._chunks = chunks

    def read(self, _size: int = -1) -> str:
        return next(self._chunks, "")


def _staging(conn: Connection, table: Table, columns: Sequence[str], extra: str = "") -> str:
    """This session's staging table for `columns` of `table` (and `extra`, a select-list expression naming one
    more column), created on first use: temporary, without constraints, emptied by each statement that reads
    it and at every commit. Reused rather than created per batch: that DDL cost about as much as the writes.
    Its name holds a digest of its columns, so a table that a migration changed gets a new one."""
    digest = hashlib.sha1(f"{table.name}:{','.join(columns)}:{extra}".encode()).hexdigest()[:8]
    name = f"tds_stage_{table.name[:40]}_{digest}"
    select_list = ", ".join(_q(conn, c) for c in columns) + (f", {extra}" if extra else "")
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "
        f"SELECT {select_list} FROM {_q(conn, table.name)} WITH NO DATA"
    )
    return name


def _staged_values(columns: list[str]):
    """A row's values in `columns` order, then its queue id: a raw the webhook queue holds (QueuedJson) is
    sent as that id, not as text."""
    raw_at = columns.index("raw")

    def staged(row: Row) -> list[Any]:
        values = [row.values.get(c) for c in columns]
        raw = values[raw_at]
        if raw.__class__ is QueuedJson:
            values[raw_at] = None
            values.append(raw.queue_id)
        else:
            values.append(None)
        return values

    return staged


def _upsert_postgres(conn: Connection, table: Table, batch: list[Row]) -> list[tuple[str, bool]]:
    columns = [c.name for c in table.columns]
    stage = _staging(conn, table, columns, "NULL::bigint AS queue_id")
    copy_rows(conn, stage, [*columns, "queue_id"], map(_staged_values(columns), batch), like=table)
    column_list = ", ".join(_q(conn, c) for c in columns)
    queue = _q(conn, sync_queue.name)
    selected = {
        "written_at": "statement_timestamp()",
        "raw": f"COALESCE(s.raw, (SELECT q.payload FROM {queue} AS q WHERE q.id = s.queue_id))",
    }
    select_list = ", ".join(selected.get(c, f"s.{_q(conn, c)}") for c in columns)
    updates = ", ".join(f"{_q(conn, c)} = EXCLUDED.{_q(conn, c)}" for c in columns if c != "zoho_id")
    statement = f"""
        WITH s AS (DELETE FROM {stage} RETURNING *)
        INSERT INTO {_q(conn, table.name)} AS t ({column_list})
        SELECT {select_list} FROM s
        ON CONFLICT (zoho_id) DO UPDATE SET {updates}
        WHERE CASE
            WHEN t.zoho_last_modified_time IS NOT NULL AND EXCLUDED.zoho_last_modified_time IS NOT NULL
            THEN EXCLUDED.zoho_last_modified_time >= t.zoho_last_modified_time
            ELSE EXCLUDED.synced_at >= t.synced_at
        END
        RETURNING t.zoho_id, (t.xmax = 0) AS inserted
    """
    return [(zoho_id, inserted) for zoho_id, inserted in conn.exec_driver_sql(statement)]


# ------------------------------------------------------------------------------------------------- SQLite


def _upsert_sqlite(conn: Connection, table: Table, batch: list[Row]) -> list[tuple[str, bool]]:
    ids = [row.zoho_id for row in batch]
    existing: set[str] = set()
    for chunk in _chunks(ids, _SQLITE_CHUNK):
        existing.update(conn.scalars(select(table.c.zoho_id).where(table.c.zoho_id.in_(chunk))))
    insert = sqlite.insert(table)
    version, synced_at = table.c.zoho_last_modified_time, table.c.synced_at
    new_version, new_synced_at = insert.excluded.zoho_last_modified_time, insert.excluded.synced_at
    guard = case(
        (and_(version.is_not(None), new_version.is_not(None)), new_version >= version),
        else_=new_synced_at >= synced_at,
    )
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.zoho_id],
        set_={c.name: insert.excluded[c.name] for c in table.columns if c.name != "zoho_id"},
        where=guard,
    ).returning(table.c.zoho_id)
    written = []
    now = datetime.now(UTC)
    for row in batch:
        values = {c.name: _decoded(row.values.get(c.name)) for c in table.columns} | {"written_at": now}
        if conn.execute(statement, values).first() is not None:
            written.append((row.zoho_id, row.zoho_id not in existing))
    return written


def _decoded(value: Any) -> Any:
    """A JsonText as the value it spells (SQLAlchemy's JSON type encodes values)."""
    return json.loads(value) if isinstance(value, JsonText) else value


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ----------------------------------------------------------------------------------------------- children


def _replace_children(conn: Connection, parent: Table, written: list[Row]) -> int:
    """Delete and re-insert the children of the written parents, per child table the record carried."""
    per_table: dict[str, list[Row]] = {}
    for row in written:
        for table_name in row.children:
            per_table.setdefault(table_name, []).append(row)
    total = 0
    for table_name, parents in per_table.items():
        child = child_tables_by_name[table_name]
        parent_ids = [row.zoho_id for row in parents]
        children = [entry for row in parents for entry in row.children[table_name]]
        for entry in children:
            if entry.get("parent_zoho_id") is None:
                raise ValueError(f"{table_name}: child row without parent_zoho_id")
        if conn.dialect.name == "postgresql":
            ids = bindparam("ids", parent_ids, type_=ARRAY(Text))
            conn.execute(child.delete().where(child.c.parent_zoho_id == any_(ids)))
            _insert_children_postgres(conn, parent, child, children)
        else:
            for chunk in _chunks(parent_ids, _SQLITE_CHUNK):
                conn.execute(child.delete().where(child.c.parent_zoho_id.in_(chunk)))
            if children:
                conn.execute(child.insert(), [{c.name: e.get(c.name) for c in child.columns} for e in children])
        total += len(children)
    return total


def _insert_children_postgres(conn: Connection, parent: Table, child: Table, children: list[dict]) -> None:
    """COPY the child rows but their ``raw`` into their staging table, then insert them with ``raw`` taken from
    the parent's, just written: the entry at the child's position in the record's list (no second encoding
    in Python, no second parsing in PostgreSQL)."""
    columns = [c.name for c in child.columns if c.name != "raw"]
    column_list = ", ".join(_q(conn, c) for c in columns)
    stage = _staging(conn, child, columns)
    copy_rows(conn, stage, columns, ([entry.get(c) for c in columns] for entry in children), like=child)
    conn.execute(
        text(
            f"WITH s AS (DELETE FROM {stage} RETURNING *) "
            f"INSERT INTO {_q(conn, child.name)} ({column_list}, raw) "
            f"SELECT {', '.join('s.' + _q(conn, c) for c in columns)}, e.value FROM s JOIN ("
            f"SELECT p.zoho_id, e.value, e.ordinality FROM {_q(conn, parent.name)} p, "
            "jsonb_array_elements(p.raw -> :field) WITH ORDINALITY e "
            "WHERE p.zoho_id IN (SELECT parent_zoho_id FROM s)"
            ") e ON e.zoho_id = s.parent_zoho_id AND e.ordinality = s.position"
        ),
        {"field": child_tables()[child.name].field},
    )


# --------------------------------------------------------------------------------------- diff, tombstones


def load_versions(conn: Connection, table: Table | str, ids: Iterable[str]) -> dict[str, KnownVersion]:
    """What the ERP holds for `ids` (those it has): version (UTC), summary hash, tombstoned or not."""
    table = resolve_table(table)
    ids = list(dict.fromkeys(str(i) for i in ids))
    if not ids:
        return {}
    query = select(
        table.c.zoho_id,
        table.c.zoho_last_modified_time,
        table.c.summary_hash,
        table.c.deleted_in_zoho_at.is_not(None),
    )
    if conn.dialect.name == "postgresql":
        # One array parameter, whatever the number of ids.
        queries = [query.where(table.c.zoho_id == any_(bindparam("ids", ids, type_=ARRAY(Text))))]
    else:
        queries = [query.where(table.c.zoho_id.in_(chunk)) for chunk in _chunks(ids, _SQLITE_CHUNK)]
    known: dict[str, KnownVersion] = {}
    for chunk_query in queries:
        for zoho_id, version, digest, tombstoned in conn.execute(chunk_query):
            known[zoho_id] = KnownVersion(as_utc(version), digest, bool(tombstoned))
    return known


def _listed_ids_table(conn: Connection, ids: set[str]) -> str:
    """A temporary table of `ids` (dropped at commit at the latest) for anti-joins against large listings."""
    temp = f"tds_listed_{next(_temp_names)}"
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {temp} (zoho_id text NOT NULL) ON COMMIT DROP")
        copy_rows(conn, temp, ["zoho_id"], ((i,) for i in ids))
        conn.exec_driver_sql(f"ANALYZE {temp}")  # so the planner picks a hash anti-join for 50k ids
    else:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {temp} (zoho_id TEXT PRIMARY KEY)")
        if ids:
            conn.exec_driver_sql(f"INSERT INTO {temp} (zoho_id) VALUES (?)", [(i,) for i in ids])
    return temp


def _window_filter(conn: Connection, table: Table, window: tuple[str, date, date] | None) -> tuple[str, list]:
    """SQL and binds limiting live rows of `table` to a document-date window (both days inclusive)."""
    if window is None:
        return "", []
    column, start, end = window
    if column not in table.c:
        raise KeyError(f"{table.name} has no column {column!r} to window tombstones by")
    binds = [
        bindparam("start", start, type_=table.c[column].type),
        bindparam("end", end, type_=table.c[column].type),
    ]
    return f" AND t.{_q(conn, column)} >= :start AND t.{_q(conn, column)} <= :end", binds


def missing_ids(
    conn: Connection,
    table: Table | str,
    listed_ids: Iterable[str],
    window: tuple[str, date, date] | None = None,
) -> tuple[list[str], int]:
    """The live rows (not tombstoned) that a listing of the whole scope did not show, and how many live rows
    the scope holds. `window` = (column, first day, last day) limits both to a partition's documents (rows
    without a date are outside every window). Absence from one offset-paged listing proves nothing by
    itself: the caller confirms each candidate before `tombstone_ids`."""
    table = resolve_table(table)
    temp = _listed_ids_table(conn, {str(i) for i in listed_ids})
    in_window, binds = _window_filter(conn, table, window)
    live = f"FROM {_q(conn, table.name)} AS t WHERE t.deleted_in_zoho_at IS NULL{in_window}"
    missing = conn.execute(
        text(
            f"SELECT t.zoho_id {live} "
            f"AND NOT EXISTS (SELECT 1 FROM {temp} AS listed WHERE listed.zoho_id = t.zoho_id) ORDER BY t.zoho_id"
        ).bindparams(*binds)
    )
    candidates = list(missing.scalars())
    total = conn.execute(text(f"SELECT count(*) {live}").bindparams(*binds)).scalar_one()
    conn.exec_driver_sql(f"DROP TABLE {temp}")
    return candidates, total


def tombstone_ids(conn: Connection, table: Table | str, ids: Iterable[str], now: datetime | None = None) -> int:
    """Mark ``deleted_in_zoho_at = now`` on the live rows among `ids` (confirmed gone); returns how many."""
    table = resolve_table(table)
    ids = sorted({str(i) for i in ids})
    if not ids:
        return 0
    now = as_utc(now) or datetime.now(UTC)
    marked = 0
    for chunk in _chunks(ids, _SQLITE_CHUNK):
        marked += conn.execute(
            table.update()
            .where(table.c.zoho_id.in_(chunk), table.c.deleted_in_zoho_at.is_(None))
            .values(deleted_in_zoho_at=now)
        ).rowcount
    return marked
