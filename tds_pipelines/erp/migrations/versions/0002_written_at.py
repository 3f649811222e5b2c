"""Rows carry ``written_at`` (the database's clock at the write), dead letters are found by record, and
each entity keeps the figures of its last full listing (``tds_sync_state.last_full_stats``).

``written_at`` drives the stock refresh of touched items: the sync's own start time (``synced_at``) missed
rows written by a long sync after a stock run had started. Existing rows start with NULL: the next daily
per-warehouse listing covers them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTITY_TABLES = (
    "zoho_products",
    "zoho_customers",
    "zoho_vendors",
    "zoho_invoices",
    "zoho_sales_orders",
    "zoho_customer_payments",
    "zoho_bills",
    "zoho_credit_notes",
    "zoho_stock_adjustments",
    "zoho_price_lists",
    "zoho_users",
    "zoho_warehouses",
)


def upgrade() -> None:
    for table in (*ENTITY_TABLES, "zoho_item_stock"):
        op.add_column(table, sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    for table in ENTITY_TABLES:
        op.create_index(f"ix_{table}_written_at", table, ["written_at"], unique=False)
    op.create_index("ix_tds_sync_queue_entity_zoho_id", "tds_sync_queue", ["entity", "zoho_id"], unique=False)
    op.add_column("tds_sync_state", sa.Column("last_full_stats", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("tds_sync_state", "last_full_stats")
    op.drop_index("ix_tds_sync_queue_entity_zoho_id", table_name="tds_sync_queue")
    for table in ENTITY_TABLES:
        op.drop_index(f"ix_{table}_written_at", table_name=table)
    for table in (*ENTITY_TABLES, "zoho_item_stock"):
        op.drop_column(table, "written_at")
