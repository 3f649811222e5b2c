"""Webhook deliveries: stored once per body (a partial unique index), with the history of their failures.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DELIVERY_EVENTS = "event IN ('webhook', 'webhook_deleted', 'webhook_unusable', 'webhook_too_large', 'imported')"


def upgrade() -> None:
    op.add_column("tds_sync_queue", sa.Column("error_history", sa.JSON(), nullable=True))
    op.create_index(
        "ux_tds_sync_queue_delivery",
        "tds_sync_queue",
        ["body_hash"],
        unique=True,
        postgresql_where=sa.text(DELIVERY_EVENTS),
        sqlite_where=sa.text(DELIVERY_EVENTS),
    )


def downgrade() -> None:
    op.drop_index("ux_tds_sync_queue_delivery", table_name="tds_sync_queue")
    op.drop_column("tds_sync_queue", "error_history")
