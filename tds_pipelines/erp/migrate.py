"""Create or migrate the ERP schema (`tds db upgrade`)."""

from __future__ import annotations

from sqlalchemy import text

from tds_pipelines import settings
from tds_pipelines.erp.db import checked_schema, is_postgres, make_engine
from tds_pipelines.erp.tables import metadata


def upgrade(url: str | None = None, schema: str | None = None) -> None:
    """Bring the ERP schema to the newest version (placeholder: create_all until Alembic lands)."""
    engine = make_engine(url, schema)
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{checked_schema(schema or settings.db_schema())}"'))
        metadata.create_all(conn)
