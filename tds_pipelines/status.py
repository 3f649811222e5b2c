"""One picture of TDS's health, the same in `tds status`, the receiver's ``GET /health`` and the old service's
monitoring routes (kept so that dashboards built on it keep working): the queue's figures and verdict, each
entity's last syncs, the open alerts, the scheduler's states. Times are ISO 8601 in TDS_TIMEZONE, offset
included, so that a reader never wonders which zone a time is in."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tds_pipelines import settings
from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.alerts import open_alerts
from tds_pipelines.erp.db import as_utc, make_engine, normalize_url, utcnow
from tds_pipelines.erp.healing import QueueHealth, queue_health
from tds_pipelines.erp.state import read_states

if TYPE_CHECKING:  # Dagster loads in a second: only the scheduler's report imports it, when asked
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorTick

STOCK_STATE_KEY = "item_stock"  # tds_pipelines.sync.stock.STATE_KEY (not imported: it loads the Zoho client)
# A status probe of an unreachable PostgreSQL host gives up after this long rather than hold a worker thread.
CONNECT_TIMEOUT_SECONDS = 5


class InstanceUnavailable(Exception):
    """The Dagster instance of DAGSTER_HOME cannot be read (misconfigured, its database down); the message is
    the error's class alone, since the error's own could quote a URL and its password."""


def status_engine(url: str, schema: str | None = None) -> Engine:
    """`make_engine(url, schema)`, with CONNECT_TIMEOUT_SECONDS on PostgreSQL unless the URL sets one."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        bounded = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
        url = bounded.render_as_string(hide_password=False)
    return make_engine(url, schema)


def tds_zone() -> ZoneInfo:
    """TDS_TIMEZONE as a zone, refused in words naming the setting."""
    name = settings.timezone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"TDS_TIMEZONE={name!r} is not a time zone name (e.g. Asia/Baghdad)") from None


def local_iso(moment: datetime | float | None, zone: ZoneInfo) -> str | None:
    """`moment` (an aware or stored-UTC datetime, or a Unix timestamp) as ISO 8601 in `zone`, to the second."""
    if moment is None:
        return None
    if isinstance(moment, int | float):
        return datetime.fromtimestamp(moment, zone).isoformat(timespec="seconds")
    return as_utc(moment).astimezone(zone).isoformat(timespec="seconds")


def queue_figures(health: QueueHealth) -> dict:
    """The queue part of every status document."""
    age, rate = health.oldest_pending_age_seconds, health.success_rate_24h
    return {
        "queue": dict(health.counts),
        "oldest_pending_age_seconds": None if age is None else round(age, 1),
        "dead_letters": health.dead_letters,
        "stuck": health.stuck,
        "success_rate_24h": None if rate is None else round(rate, 4),
    }


def collect_status(engine: Engine, now: datetime | None = None) -> dict:
    """What an operator asks first: is the queue draining, when did each entity last sync (every entity
    listed, null before its first sync), and what is wrong right now (the open alerts, newest first)."""
    zone = tds_zone()
    health = queue_health(engine, settings.heal_stuck_after(), now)
    with engine.connect() as conn:
        states = read_states(conn)
    entities = {}
    for name in [*(spec.name for spec in ENTITIES), STOCK_STATE_KEY]:
        state = states.get(name)
        entities[name] = {
            "last_sync_at": local_iso(state and state.last_sync_at, zone),
            "last_full_sync_at": local_iso(state and state.last_full_sync_at, zone),
        }
    alerts = [
        {
            "incident": alert.incident,
            "kind": alert.kind,
            "severity": alert.severity,
            "entity": alert.entity,
            "message": alert.message,
            "since": local_iso(alert.created_at, zone),
            "occurrences": alert.occurrences,
        }
        for alert in open_alerts(engine)
    ]
    return {**queue_figures(health), "entities": entities, "open_alerts": alerts}


def monitoring_health(engine: Engine, now: datetime | None = None) -> dict:
    """The old service's ``/api/tds/monitoring/health``: the queue's statistics and one word for them.

    The word is the verdict of the webhook_queue asset checks (tds_pipelines.health), so that the dashboard
    and Dagster never disagree: "unhealthy" when a check fails at ERROR severity, "degraded" when one fails
    at WARN only, "healthy" when all pass. The failing checks are listed with their descriptions."""
    from tds_pipelines.health import queue_check_results  # loads Dagster: only when asked

    now = as_utc(now) or utcnow()
    health = queue_health(engine, settings.heal_stuck_after(), now)
    failing = [check for check in queue_check_results(health) if not check.passed]
    severities = {check.severity.value for check in failing}
    return {
        "status": "unhealthy" if "ERROR" in severities else "degraded" if failing else "healthy",
        **queue_figures(health),
        "total": sum(health.counts.values()),
        "failing_checks": [
            {"check": check.check_name, "severity": check.severity.value, "description": check.description}
            for check in failing
        ],
        "checked_at": local_iso(now, tds_zone()),
    }


def scheduler_jobs(now: datetime | None = None) -> dict:
    """The old service's ``/api/tds/monitoring/scheduler/jobs``: each schedule and sensor of the TDS code
    location with its state (RUNNING/STOPPED), its last tick and, for a running schedule, its next one.

    States and ticks come from the Dagster instance of DAGSTER_HOME. Without DAGSTER_HOME there is no
    instance to ask: each state is its definition's default and no tick is known (``"instance": null``)."""
    import dagster as dg

    from tds_pipelines.definitions import defs  # heavy: only when asked

    now = as_utc(now) or utcnow()
    zone = tds_zone()
    definitions = [*(("schedule", d) for d in defs.schedules), *(("sensor", d) for d in defs.sensors)]
    if not os.environ.get("DAGSTER_HOME"):
        return {"instance": None, "jobs": [_job(kind, d, None, None, now, zone) for kind, d in definitions]}
    try:
        with dg.DagsterInstance.get() as instance:
            stored = _stored_states(instance, {(kind, d.name) for kind, d in definitions})
            home = instance.root_directory
    except Exception as exc:  # noqa: BLE001 - each storage backend fails in its own classes (dagster_postgres: Exception)
        raise InstanceUnavailable(type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__) from None
    jobs = [_job(kind, d, *stored.get((kind, d.name), (None, None)), now, zone) for kind, d in definitions]
    return {"instance": home, "jobs": jobs}


def _stored_states(
    instance: dg.DagsterInstance, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[InstigatorStatus, InstigatorTick | None]]:
    """(stored status, latest tick or None) by (type, name) for the `wanted` instigators the instance knows.
    An instance may also hold states from an earlier code location name: the one that ticked last wins."""
    stored: dict[tuple[str, str], tuple[InstigatorStatus, InstigatorTick | None]] = {}
    for state in instance.all_instigator_state():
        key = (state.instigator_type.value.lower(), state.instigator_name)
        if key not in wanted:
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        tick = ticks[0] if ticks else None
        known = stored.get(key)
        if known is None or (tick is not None and (known[1] is None or tick.timestamp > known[1].timestamp)):
            stored[key] = (state.status, tick)
    return stored


def _job(
    kind: str,
    definition: dg.ScheduleDefinition | dg.SensorDefinition,
    status: InstigatorStatus | None,
    tick: InstigatorTick | None,
    now: datetime,
    zone: ZoneInfo,
) -> dict:
    # A stored RUNNING or STOPPED is an operator's choice; DECLARED_IN_CODE (or no state) means the default.
    chosen = status is not None and status.value in ("RUNNING", "STOPPED")
    state = status.value if chosen else definition.default_status.value
    cron = timezone = next_tick = None
    if kind == "schedule":
        cron, timezone = definition.cron_schedule, definition.execution_timezone or "UTC"
        next_tick = _next_tick(cron, timezone, now) if state == "RUNNING" else None
    return {
        "name": definition.name,
        "type": kind,
        "state": state,
        "cron": cron,
        "timezone": timezone,
        "last_tick_at": local_iso(tick and tick.timestamp, zone),
        "last_tick_status": tick.status.value if tick else None,
        "next_tick_at": local_iso(next_tick, zone),
    }


def _next_tick(cron: str | Sequence[str], timezone: str, now: datetime) -> datetime:
    from dagster._utils.schedules import cron_string_iterator

    crons = [cron] if isinstance(cron, str) else cron
    return min(next(t for t in cron_string_iterator(now.timestamp(), c, timezone) if t > now) for c in crons)
