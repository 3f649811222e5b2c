"""Small database helpers shared by the token cache and the rate budget."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.dialects import postgresql, sqlite

from tds_pipelines.erp.db import is_postgres


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


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
