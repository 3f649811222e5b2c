"""Settings read from the environment (DESIGN §4). Secrets are not read here: resources take them via EnvVar."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

DEFAULT_HOME = Path(".tds")


def database_url() -> str:
    """The ERP database URL; a bare ``postgresql://`` means psycopg2."""
    url = os.environ.get("TDS_DATABASE_URL") or f"sqlite:///{DEFAULT_HOME / 'erp.sqlite'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def db_schema() -> str:
    return os.environ.get("TDS_DB_SCHEMA") or "tds"


def timezone() -> str:
    return os.environ.get("TDS_TIMEZONE") or "Asia/Baghdad"


def history_start() -> date:
    return date.fromisoformat(os.environ.get("TDS_HISTORY_START") or "2020-01-01").replace(day=1)
