"""Records TDS could not apply are kept, with their reason, as replayable dead letters in tds_sync_queue."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from tds_pipelines.erp.tables import sync_queue


def keep_rejected_record(conn: Connection, entity: str, zoho_id: str | None, record: dict, reason: str) -> int:
    """Store a record the sync could not apply as a DEAD_LETTER (event ``sync_rejected``); returns its id."""
    now = datetime.now(UTC)
    result = conn.execute(
        sync_queue.insert().values(
            status="DEAD_LETTER",
            entity=entity,
            event="sync_rejected",
            zoho_id=zoho_id,
            payload=record,
            attempts=1,
            last_error=reason,
            received_at=now,
            completed_at=now,
        )
    )
    return result.inserted_primary_key[0]
