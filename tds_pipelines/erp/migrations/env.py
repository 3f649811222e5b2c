"""Alembic environment of the ERP store.

TDS runs migrations through ``tds_pipelines.erp.migrate`` which passes an open connection in
``config.attributes["connection"]`` (its search_path already points at the TDS schema on PostgreSQL) and the
schema name in ``config.attributes["schema"]``. Run by hand (``alembic -c .../alembic.ini -x url=... -x
schema=...``), env.py builds that connection itself the same way.
"""

from __future__ import annotations

from alembic import context

from tds_pipelines.erp.db import make_engine
from tds_pipelines.erp.migrate import include_name, prepare_schema
from tds_pipelines.erp.tables import metadata

config = context.config


def _run(connection, schema: str | None) -> None:
    postgres = connection.dialect.name == "postgresql"
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # Alembic's bookkeeping stays beside TDS's tables, never in public.
        version_table_schema=schema if postgres else None,
        compare_type=True,
        include_name=include_name,
        # SQLite cannot ALTER most things: later migrations use batch mode there.
        render_as_batch=not postgres,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    schema = config.attributes.get("schema")
    if connection is not None:
        _run(connection, schema)
        return
    args = context.get_x_argument(as_dictionary=True)
    url, schema = prepare_schema(args.get("url"), args.get("schema"))
    with make_engine(url, schema).begin() as connection:
        _run(connection, schema)


if context.is_offline_mode():
    raise SystemExit("TDS migrations run online only: give a database URL (tds db upgrade)")
run_migrations_online()
