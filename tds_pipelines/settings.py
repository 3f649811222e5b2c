"""Settings read from the environment (DESIGN §4). Secrets are not read here: resources use EnvVar."""

from __future__ import annotations

import json
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


def zoho_calls_per_minute() -> int:
    """Zoho's per-minute limit, shared by every process of the organization."""
    return int(os.environ.get("TDS_ZOHO_CALLS_PER_MINUTE") or 100)


def zoho_daily_limit() -> int | None:
    """The plan's daily quota; None: as Zoho's X-Rate-Limit-Limit header reports."""
    value = os.environ.get("TDS_ZOHO_DAILY_LIMIT")
    return int(value) if value else None


def zoho_api_shares() -> dict[str, float] | None:
    """Fractions of the daily quota per job (a JSON object); None: the built-in shares."""
    value = os.environ.get("TDS_ZOHO_API_SHARES")
    return {str(k): float(v) for k, v in json.loads(value).items()} if value else None


def tombstone_max_share() -> float:
    """The largest share of an entity's live rows one listing may tombstone; more is refused as a probable
    mass deletion or a broken listing (TDS_TOMBSTONE_MAX_SHARE, default 0.1; 10 rows are always allowed)."""
    return float(os.environ.get("TDS_TOMBSTONE_MAX_SHARE") or 0.1)
