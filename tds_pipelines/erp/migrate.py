"""Create or migrate the ERP schema with Alembic (`tds db upgrade`).

On PostgreSQL every TDS table, and Alembic's own ``alembic_version``, lives in the TDS schema
(``TDS_DB_SCHEMA``, default ``tds``), never in ``public``: an ERP database already holds the old service's
``public.tds_sync_queue``, which TDS must leave alone. On SQLite there are no schemas; the file is migrated.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, text

from tds_pipelines import settings
from tds_pipelines.erp.db import checked_schema, make_engine, normalize_url
from tds_pipelines.erp.tables import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Concurrent upgrades (two processes starting at once) queue on this advisory lock instead of racing.
_LOCK_KEY = zlib.crc32(b"tds_pipelines.erp.migrate") & 0x7FFFFFFF


def _is_postgres_url(url: str) -> bool:
    return url.startswith("postgresql")


def include_name(name: str | None, type_: str, _parents: dict) -> bool:
    """Autogenerate ignores Alembic's own version table (it sits in the TDS schema, named explicitly)."""
    return not (type_ == "table" and name == "alembic_version")


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    """An Alembic Config for the packaged migrations; env.py uses `connection` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def prepare_schema(url: str | None = None, schema: str | None = None) -> tuple[str, str | None]:
    """Resolve `url`/`schema` from the settings and, on PostgreSQL, create the schema if it is missing.

    Returns the normalized URL and the schema (None on SQLite). The schema is created through a short-lived
    engine of its own, before any search_path-bound connection resolves its default schema."""
    url = normalize_url(url or settings.database_url())
    if not _is_postgres_url(url):
        return url, None
    schema = checked_schema(schema or settings.db_schema())
    bootstrap = create_engine(url, connect_args={"application_name": "tds-migrate"})
    try:
        with bootstrap.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    finally:
        bootstrap.dispose()
    return url, schema


def upgrade(url: str | None = None, schema: str | None = None, revision: str = "head") -> None:
    """Bring the ERP schema to `revision` (default the newest). Idempotent; safe to run concurrently."""
    url, schema = prepare_schema(url, schema)
    engine = make_engine(url, schema)
    with engine.begin() as conn:
        if schema is not None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        command.upgrade(alembic_config(conn, schema), revision)


def current_revision(url: str | None = None, schema: str | None = None) -> str | None:
    """The revision the database is at (None before the first upgrade)."""
    url = normalize_url(url or settings.database_url())
    schema = checked_schema(schema or settings.db_schema()) if _is_postgres_url(url) else None
    with make_engine(url, schema).connect() as conn:
        opts = {"version_table_schema": schema} if schema else {}
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def drift(url: str | None = None, schema: str | None = None) -> list:
    """Differences between the migrated database and `tables.metadata` (empty when they agree).

    A non-empty answer means a table or column was added to tables.py without a migration."""
    url = normalize_url(url or settings.database_url())
    schema = checked_schema(schema or settings.db_schema()) if _is_postgres_url(url) else None
    with make_engine(url, schema).connect() as conn:
        opts = {"compare_type": True, "include_name": include_name}
        context = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(context, metadata)
