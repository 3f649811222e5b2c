"""The sync cursor of each entity (``tds_sync_state``), read and advanced in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, case, null, select
from sqlalchemy.dialects import postgresql, sqlite

from tds_pipelines.erp.db import as_utc
from tds_pipelines.erp.tables import sync_state


@dataclass(frozen=True)
class SyncState:
    """An entity's sync state. `cursor` is the newest version a finished listing saw (UTC)."""

    entity: str
    cursor: datetime | None
    last_full_sync_at: datetime | None
    last_sync_at: datetime | None
    last_run_id: str | None
    last_stats: dict[str, Any] | None
    updated_at: datetime
    last_full_stats: dict[str, Any] | None = None


def read_state(conn: Connection, entity: str) -> SyncState | None:
    """The entity's state, or None before its first sync. Timestamps are aware UTC on every database."""
    row = conn.execute(select(sync_state).where(sync_state.c.entity == entity)).mappings().first()
    return None if row is None else _state(row)


def read_states(conn: Connection) -> dict[str, SyncState]:
    """Every entity's state, by entity."""
    return {row["entity"]: _state(row) for row in conn.execute(select(sync_state)).mappings()}


def _state(row) -> SyncState:
    return SyncState(
        entity=row["entity"],
        cursor=as_utc(row["cursor"]),
        last_full_sync_at=as_utc(row["last_full_sync_at"]),
        last_sync_at=as_utc(row["last_sync_at"]),
        last_run_id=row["last_run_id"],
        last_stats=row["last_stats"],
        updated_at=as_utc(row["updated_at"]),
        last_full_stats=row["last_full_stats"],
    )


def advance_cursor(
    conn: Connection,
    entity: str,
    cursor: datetime | None,
    run_id: str | None,
    stats: dict[str, Any] | None,
    full: bool,
    now: datetime | None = None,
) -> SyncState:
    """Move the entity's cursor to `cursor` unless it already stands later; never commits.

    The cursor never moves backwards (an older or None `cursor` keeps the stored one). `stats` are the
    figures of a finished sync: given, they are stored with ``last_sync_at = now`` (and ``last_full_sync_at``
    and ``last_full_stats`` when `full`); a per-page advance passes None and touches only the cursor, run id
    and ``updated_at``."""
    now = as_utc(now) or datetime.now(UTC)
    cursor = as_utc(cursor)
    finished = stats is not None
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_state)
    insert = insert.values(
        entity=entity,
        cursor=cursor,
        last_full_sync_at=now if full and finished else None,
        last_sync_at=now if finished else None,
        last_run_id=run_id,
        last_stats=stats if finished else null(),
        last_full_stats=stats if full and finished else null(),
        updated_at=now,
    )
    stored, offered = sync_state.c.cursor, insert.excluded.cursor
    updates: dict[str, Any] = {
        "cursor": case(
            (offered.is_(None), stored),
            ((stored.is_(None)) | (offered > stored), offered),
            else_=stored,
        ),
        "updated_at": insert.excluded.updated_at,
    }
    if run_id is not None:
        updates["last_run_id"] = insert.excluded.last_run_id
    if finished:
        updates["last_sync_at"] = insert.excluded.last_sync_at
        updates["last_stats"] = insert.excluded.last_stats
        if full:
            updates["last_full_sync_at"] = insert.excluded.last_full_sync_at
            updates["last_full_stats"] = insert.excluded.last_full_stats
    conn.execute(insert.on_conflict_do_update(index_elements=[sync_state.c.entity], set_=updates))
    state = read_state(conn, entity)
    assert state is not None
    return state
