"""Engines for the ERP store (PostgreSQL in its own schema in production, SQLite for the demo default), and the
small helpers every writer shares: UTC instants, locking transactions, insert-if-missing."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

from tds_pipelines import settings

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def normalize_url(url: str) -> str:
    """A bare ``postgresql://`` means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3)."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def checked_schema(schema: str) -> str:
    """The schema name, refused unless it is a plain identifier (it is spliced into DDL and search_path)."""
    if not _SCHEMA_NAME.match(schema) or schema.lower() == "public":
        raise ValueError(f"TDS_DB_SCHEMA must be a plain identifier other than 'public', got {schema!r}")
    return schema


def _json_default(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` as PostgreSQL can store it: NUL characters dropped (text and jsonb cannot hold U+0000), lone
    surrogates (valid in JSON escapes, not in UTF-8) replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def clean_json(value):
    """`value` with every string (keys too) passed through clean_text, and numbers JSON cannot hold
    (``1e400`` reads as infinity) spelled as strings: jsonb refuses them."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, dict):
        return {clean_json(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


class JsonText(str):
    """JSON text known to be storable (as PostgreSQL printed it): a JSON column's writer takes it as is."""


class QueuedJson(JsonText):
    """JSON text that the webhook queue holds as the payload of its row `queue_id`: on PostgreSQL the writer
    copies the stored value from there instead of sending the text to be parsed again."""

    def __new__(cls, text: str, queue_id: int) -> QueuedJson:
        value = super().__new__(cls, text)
        value.queue_id = queue_id
        return value


def json_dumps(value) -> str:
    """JSON for the raw/payload columns: UTF-8 as is (Arabic stays readable), compact, storable.

    PostgreSQL's jsonb rejects the escape \\u0000 and infinities, and UTF-8 cannot carry a lone surrogate:
    such values are cleaned (clean_json) first."""
    try:
        text = _dumps(value)
    except ValueError:  # not a finite number
        return _dumps(clean_json(value))
    if "\\u0000" in text or clean_text(text) is not text:
        return _dumps(clean_json(value))
    return text


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False)


def make_engine(url: str | None = None, schema: str | None = None) -> Engine:
    """An engine for `url` (default TDS_DATABASE_URL); on PostgreSQL every connection works in `schema`.

    One engine per resolved (url, schema): the defaults are read from the environment before the cache is
    consulted, so a changed TDS_DB_SCHEMA never gets an engine bound to the old one."""
    url = normalize_url(url or settings.database_url())
    if url.startswith("sqlite"):
        return _cached_engine(url, None)
    return _cached_engine(url, checked_schema(schema or settings.db_schema()))


@lru_cache(maxsize=8)
def _cached_engine(url: str, schema: str | None) -> Engine:
    if schema is None:
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_dumps)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        json_serializer=json_dumps,
        connect_args={"options": f"-csearch_path={schema}", "application_name": "tds"},
    )


make_engine.cache_clear = _cached_engine.cache_clear  # type: ignore[attr-defined]  # tests reset engines


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers run beside the one writer; the busy timeout waits out short write locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


# SQLite cannot see other connections' open transactions: assume none stays open longer than this.
SQLITE_WRITE_SETTLE = timedelta(minutes=5)


def write_horizon(conn: Connection) -> datetime:
    """The earliest ``written_at`` a row not yet visible to `conn` may carry: now on the database's clock, or
    the start of the oldest TDS transaction still open with writes (its rows carry a statement time after
    that start and show once it commits). Reading ``written_at >=`` the previous horizon misses no write."""
    if conn.dialect.name != "postgresql":
        return utcnow() - SQLITE_WRITE_SETTLE
    horizon = conn.exec_driver_sql(
        "SELECT least(statement_timestamp(), (SELECT min(xact_start) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'tds' AND backend_xid IS NOT NULL "
        "AND pid <> pg_backend_pid()))"
    ).scalar_one()
    return as_utc(horizon)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as aware UTC (SQLite hands back naive values, written as UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


LOCK_TIMEOUT_SECONDS = 180


@contextmanager
def write_transaction(engine: Engine, durable: bool = True) -> Iterator[Connection]:
    """A transaction that may take row locks: plain BEGIN on PostgreSQL (rows are locked with
    ``SELECT ... FOR UPDATE``; a lock wait is bounded by LOCK_TIMEOUT_SECONDS), ``BEGIN IMMEDIATE`` on
    SQLite so the database write lock is taken up front and concurrent processes queue instead of failing on
    lock upgrade (bounded by the engine's busy timeout). `durable=False` skips the WAL flush at commit on
    PostgreSQL: for bookkeeping whose last milliseconds may be lost in a crash (the call log), not for data."""
    with engine.connect() as conn:
        if is_postgres(engine):
            with conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
                if not durable:
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield conn
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def insert_ignore(conn: Connection, table: Table, values: dict) -> None:
    """INSERT the row unless its primary key exists (ON CONFLICT DO NOTHING on both dialects)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
