"""Settings read from the environment (DESIGN §4). Secrets are not read here: resources use EnvVar."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
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


def schedule_crons() -> dict[str, str]:
    """Cron overrides per schedule name (TDS_SCHEDULE_CRONS, a JSON object), e.g. to fire one every minute."""
    value = os.environ.get("TDS_SCHEDULE_CRONS")
    if not value:
        return {}
    try:
        crons = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TDS_SCHEDULE_CRONS is not JSON ({exc.msg}): give {{schedule name: cron}}") from None
    if not isinstance(crons, dict):
        raise ValueError("TDS_SCHEDULE_CRONS must be a JSON object {schedule name: cron}")
    return {str(k): str(v) for k, v in crons.items()}


def heal_stuck_after() -> timedelta:
    """A PROCESSING item locked this long is stuck, whatever its run (TDS_HEAL_STUCK_MINUTES, default 60)."""
    return timedelta(minutes=_number("TDS_HEAL_STUCK_MINUTES", 60))


def heal_dead_letters_after() -> timedelta:
    """Dead letters this old are retried once by auto_heal (TDS_HEAL_DEAD_LETTER_HOURS, default 24)."""
    return timedelta(hours=_number("TDS_HEAL_DEAD_LETTER_HOURS", 24))


def run_history_days() -> float:
    """Runs that ended this many days ago are deleted with their logs by purge_run_history
    (TDS_RUN_HISTORY_DAYS, default 90; 0 keeps every run)."""
    return _number("TDS_RUN_HISTORY_DAYS", 90)


def queue_pending_limits() -> tuple[float, float]:
    """The oldest waiting webhook's age in seconds that warns, and that errs: TDS_QUEUE_PENDING_WARN_SECONDS
    (default 900) and TDS_QUEUE_PENDING_ERROR_SECONDS (default 3600)."""
    return _number("TDS_QUEUE_PENDING_WARN_SECONDS", 900), _number("TDS_QUEUE_PENDING_ERROR_SECONDS", 3600)


def comparison_wait() -> timedelta:
    """How long the statistics comparison waits for a full sync still running (TDS_COMPARISON_WAIT_MINUTES,
    default 240): counting mid-sync would report the sync's own progress as a mismatch."""
    return timedelta(minutes=_number("TDS_COMPARISON_WAIT_MINUTES", 240))


def count_tolerance_share() -> float:
    """The share of an entity's live rows its count may be off by (TDS_COUNT_TOLERANCE_SHARE, default 0)."""
    return _number("TDS_COUNT_TOLERANCE_SHARE", 0.0)


def count_tolerance_rows() -> int:
    """The rows a count may always be off by (TDS_COUNT_TOLERANCE_ROWS, default 0): records saved in Zoho
    since the last sync and not yet delivered by a webhook."""
    return int(_number("TDS_COUNT_TOLERANCE_ROWS", 0))


def _number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{name}={value!r} must not be negative")
    return number
