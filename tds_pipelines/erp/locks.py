"""One sync of an entity at a time, whatever started it (a schedule, a backfill, `tds sync`, another host).

PostgreSQL: a session advisory lock held on a dedicated connection for the length of the sync; SQLite: an
exclusive lock on a file beside the database. Both vanish with the process that held them, so a killed run
never leaves an entity locked.
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from tds_pipelines.erp.db import is_postgres


@contextmanager
def sync_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Hold the sync lock of `name` while the block runs. Yields True when it was taken, False (at once,
    without waiting) when another process holds it."""
    if is_postgres(engine):
        with _advisory_lock(engine, name) as taken:
            yield taken
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    with open(Path(f"{database}.{name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(engine: Engine, name: str) -> Iterator[bool]:
    with engine.connect() as conn:
        # The schema is part of the key: two TDS installations may share one database.
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        key = zlib.crc32(f"tds-sync:{schema}:{name}".encode())
        taken = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        conn.commit()  # a session lock: the connection must not sit idle in a transaction meanwhile
        try:
            yield taken
        finally:
            if taken:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
