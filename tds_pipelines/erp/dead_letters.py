"""Records TDS could not apply are kept, with their reason, as replayable dead letters in tds_sync_queue.

A record is kept once per version: `key` (stored in ``body_hash``) names what was rejected, e.g. the hash of
the list entry, so the same bad record seen by every run stays one dead letter, and the sync can skip
fetching it again until Zoho changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from tds_pipelines.erp.tables import sync_queue

SYNC_REJECTED = "sync_rejected"


def keep_rejected_record(
    conn: Connection, entity: str, zoho_id: str | None, record: object, reason: str, key: str
) -> int | None:
    """Store a record the sync could not apply as a DEAD_LETTER (event ``sync_rejected``) unless one with the
    same entity, id and `key` is kept already; returns the new row's id, or None when it was kept before."""
    same = select(sync_queue.c.id).where(
        sync_queue.c.entity == entity,
        sync_queue.c.event == SYNC_REJECTED,
        sync_queue.c.body_hash == key,
        sync_queue.c.zoho_id.is_(None) if zoho_id is None else sync_queue.c.zoho_id == zoho_id,
    )
    if conn.execute(same.limit(1)).first() is not None:
        return None
    now = datetime.now(UTC)
    result = conn.execute(
        sync_queue.insert().values(
            status="DEAD_LETTER",
            entity=entity,
            event=SYNC_REJECTED,
            zoho_id=zoho_id,
            payload=record if isinstance(record, dict) else {"value": record},
            body_hash=key,
            attempts=1,
            last_error=reason,
            received_at=now,
            completed_at=now,
        )
    )
    return result.inserted_primary_key[0]


def rejected_keys(conn: Connection, entity: str, zoho_ids: Iterable[str]) -> set[tuple[str, str]]:
    """The (zoho_id, key) pairs of `entity` kept as dead letters by the sync, among `zoho_ids`."""
    ids = list(dict.fromkeys(zoho_ids))
    found: set[tuple[str, str]] = set()
    for start in range(0, len(ids), 500):
        query = select(sync_queue.c.zoho_id, sync_queue.c.body_hash).where(
            sync_queue.c.entity == entity,
            sync_queue.c.event == SYNC_REJECTED,
            sync_queue.c.status == "DEAD_LETTER",
            sync_queue.c.zoho_id.in_(ids[start : start + 500]),
        )
        found.update((zoho_id, key) for zoho_id, key in conn.execute(query))
    return found
