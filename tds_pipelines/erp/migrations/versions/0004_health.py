"""Health and alerts: a dead letter's one automatic retry, and alerts as incidents (one open per key, each
notified once when raised and once when resolved).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("tds_sync_queue", sa.Column("auto_retried_at", TIMESTAMP, nullable=True))
    # The queue's 24-hour success rate reads the items completed lately.
    op.create_index(
        "ix_tds_sync_queue_completed_at",
        "tds_sync_queue",
        ["completed_at"],
        postgresql_where=sa.text("status = 'COMPLETED'"),
        sqlite_where=sa.text("status = 'COMPLETED'"),
    )
    op.add_column("tds_alerts", sa.Column("incident", sa.Text(), nullable=True))
    op.add_column("tds_alerts", sa.Column("last_seen_at", TIMESTAMP, nullable=True))
    op.add_column("tds_alerts", sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("tds_alerts", sa.Column("notified_at", TIMESTAMP, nullable=True))
    op.add_column("tds_alerts", sa.Column("recovery_notified_at", TIMESTAMP, nullable=True))
    op.create_index(
        "ux_tds_alerts_open_incident",
        "tds_alerts",
        ["incident"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ux_tds_alerts_open_incident", table_name="tds_alerts")
    for column in ("recovery_notified_at", "notified_at", "occurrences", "last_seen_at", "incident"):
        op.drop_column("tds_alerts", column)
    op.drop_index("ix_tds_sync_queue_completed_at", table_name="tds_sync_queue")
    op.drop_column("tds_sync_queue", "auto_retried_at")
