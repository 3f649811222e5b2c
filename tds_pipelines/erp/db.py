"""Engines for the ERP store: PostgreSQL (in its own schema) for production, SQLite for the embedded default."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event

from tds_pipelines import settings

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def normalize_url(url: str) -> str:
    """A bare ``postgresql://`` means psycopg2 here (SQLAlchemy 2.1 would pick psycopg 3)."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare) :]
    return url


def checked_schema(schema: str) -> str:
    """The schema name, refused unless it is a plain identifier (it is spliced into DDL and search_path)."""
    if not _SCHEMA_NAME.match(schema) or schema.lower() == "public":
        raise ValueError(f"TDS_DB_SCHEMA must be a plain identifier other than 'public', got {schema!r}")
    return schema


@lru_cache(maxsize=8)
def make_engine(url: str | None = None, schema: str | None = None) -> Engine:
    """An engine for `url` (default TDS_DATABASE_URL); on PostgreSQL every connection works in `schema`."""
    url = normalize_url(url or settings.database_url())
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    schema = checked_schema(schema or settings.db_schema())
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"options": f"-csearch_path={schema}", "application_name": "tds"},
    )


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers run beside the one writer; the busy timeout waits out short write locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
