"""SQLAlchemy Core tables of the ERP store, derived from the entity registry plus the operational tables.

Tables carry no schema: on PostgreSQL every connection's search_path is the TDS schema (see erp.db), so the
same metadata serves PostgreSQL and SQLite and never touches ``public``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from tds_pipelines.entities import (
    ENTITIES,
    ITEM_STOCK_COLUMNS,
    ITEM_STOCK_TABLE,
    ChildSpec,
    Col,
    child_tables,
)

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)
_TYPES = {
    "text": Text,
    "numeric": lambda: Numeric(20, 6),
    "int": BigInteger,
    "bool": Boolean,
    "date": Date,
    "timestamp": lambda: Timestamp,
}


def _typed(cols: tuple[Col, ...]) -> list[Column]:
    return [Column(col.name, _TYPES[col.type]()) for col in cols]


def _entity_table(name: str, cols: tuple[Col, ...]) -> Table:
    return Table(
        name,
        metadata,
        Column("zoho_id", Text, primary_key=True),
        Column("zoho_last_modified_time", Timestamp),
        # Hash of the list summary: the change test for records that carry no version.
        Column("summary_hash", Text),
        Column("deleted_in_zoho_at", Timestamp),
        # When this version arrived (sync start or webhook receipt): the tie-breaker for unversioned records.
        Column("synced_at", Timestamp, nullable=False),
        *_typed(cols),
        Column("raw", Json, nullable=False),
        # When the row was last written, on the database's clock: what the stock refresh of touched items
        # reads (a sync that started before a stock run may write after it).
        Column("written_at", Timestamp),
    )


def _child_table(child: ChildSpec) -> Table:
    return Table(
        child.table,
        metadata,
        Column("parent_zoho_id", Text, primary_key=True),
        Column("position", Integer, primary_key=True),
        Column("zoho_id", Text),
        *_typed(child.columns),
        Column("raw", Json, nullable=False),
    )


entity_tables: dict[str, Table] = {spec.name: _entity_table(spec.table, spec.columns) for spec in ENTITIES}
child_tables_by_name: dict[str, Table] = {name: _child_table(child) for name, child in child_tables().items()}
item_stock = _entity_table(ITEM_STOCK_TABLE, ITEM_STOCK_COLUMNS)

for _spec in ENTITIES:
    if _spec.date_field:
        Index(f"ix_{_spec.table}_{_spec.date_field}", entity_tables[_spec.name].c[_spec.date_field])
    Index(f"ix_{_spec.table}_written_at", entity_tables[_spec.name].c.written_at)
Index("ix_zoho_item_stock_item_id", item_stock.c.item_id)

sync_state = Table(
    "tds_sync_state",
    metadata,
    Column("entity", Text, primary_key=True),
    # The newest version seen by a listing that finished its pages (UTC), the incremental cursor.
    Column("cursor", Timestamp),
    Column("last_full_sync_at", Timestamp),
    Column("last_sync_at", Timestamp),
    Column("last_run_id", Text),
    Column("last_stats", JSON),
    Column("updated_at", Timestamp, nullable=False),
    # The figures of the last full listing: what the next one will cost, for the daily budget's order.
    Column("last_full_stats", JSON),
)

oauth_tokens = Table(
    "tds_oauth_tokens",
    metadata,
    # sha256 of accounts host + client id + client secret + refresh token: never the secrets themselves, and
    # changed credentials never reuse a token.
    Column("cache_key", Text, primary_key=True),
    Column("access_token", Text),
    Column("api_domain", Text),
    Column("expires_at", Timestamp),
    Column("refreshed_at", Timestamp),
    Column("refresh_count", Integer, nullable=False, default=0),
    # After an "Access Denied" refresh throttle nobody asks again before this instant.
    Column("blocked_until", Timestamp),
)

# One row per organization: the lock every process takes to draw from the shared per-minute budget, and
# the daily quota as Zoho last reported it.
rate_budget = Table(
    "tds_rate_budget",
    metadata,
    Column("organization_id", Text, primary_key=True),
    Column("per_minute", Integer, nullable=False),
    Column("daily_limit", Integer),
    Column("daily_remaining", Integer),
    Column("daily_reset_at", Timestamp),
    Column("blocked_until", Timestamp),
    Column("block_reason", Text),
    Column("updated_at", Timestamp, nullable=False),
)

# Every call TDS makes to Zoho: the sliding per-minute window and the daily shares per job read it.
api_calls = Table(
    "tds_api_calls",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("organization_id", Text, nullable=False),
    Column("called_at", Timestamp, nullable=False),
    Column("job", Text, nullable=False),
)
Index("ix_tds_api_calls_org_called_at", api_calls.c.organization_id, api_calls.c.called_at)

sync_queue = Table(
    "tds_sync_queue",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("status", Text, nullable=False, default="PENDING"),
    Column("entity", Text),
    Column("event", Text),
    Column("zoho_id", Text),
    Column("payload", Json),
    Column("headers", JSON),
    Column("body_hash", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("received_at", Timestamp, nullable=False),
    Column("next_attempt_at", Timestamp),
    Column("locked_at", Timestamp),
    Column("run_id", Text),
    Column("completed_at", Timestamp),
    # Earlier failures of the item ({at, attempts, error, status}), kept across retries and replays.
    Column("error_history", JSON),
    # When auto-healing put this dead letter back (once per item; a replay by hand clears it).
    Column("auto_retried_at", Timestamp),
)
Index("ix_tds_sync_queue_status_next", sync_queue.c.status, sync_queue.c.next_attempt_at)
# The queue's 24-hour success rate reads the items completed lately.
Index(
    "ix_tds_sync_queue_completed_at",
    sync_queue.c.completed_at,
    postgresql_where=sync_queue.c.status == "COMPLETED",
    sqlite_where=sync_queue.c.status == "COMPLETED",
)
# Dead letters are kept once per (entity, record, version): the sync looks them up by record.
Index("ix_tds_sync_queue_entity_zoho_id", sync_queue.c.entity, sync_queue.c.zoho_id)
# A delivery (a webhook, an imported body) is stored once per body_hash: Zoho's retries and redeliveries of
# the same version are acknowledged without a second row.
DELIVERY_EVENTS = ("webhook", "webhook_deleted", "webhook_unusable", "webhook_too_large", "imported")
Index(
    "ux_tds_sync_queue_delivery",
    sync_queue.c.body_hash,
    unique=True,
    postgresql_where=sync_queue.c.event.in_(DELIVERY_EVENTS),
    sqlite_where=sync_queue.c.event.in_(DELIVERY_EVENTS),
)

alerts = Table(
    "tds_alerts",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("created_at", Timestamp, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("entity", Text),
    Column("message", Text, nullable=False),
    Column("details", JSON),
    Column("resolved_at", Timestamp),
    # The incident this alert reports (e.g. "check:zoho/invoices:count_matches_zoho"): one open row per key.
    Column("incident", Text),
    Column("last_seen_at", Timestamp),
    Column("occurrences", Integer, nullable=False, default=1, server_default="1"),
    Column("notified_at", Timestamp),  # posted to TDS_ALERT_WEBHOOK_URL
    Column("recovery_notified_at", Timestamp),
)
Index(
    "ux_tds_alerts_open_incident",
    alerts.c.incident,
    unique=True,
    postgresql_where=alerts.c.resolved_at.is_(None),
    sqlite_where=alerts.c.resolved_at.is_(None),
)
