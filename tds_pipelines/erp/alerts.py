"""Alerts as incidents in ``tds_alerts``: one open row per incident key, counted while the trouble lasts and
resolved when it ends; each is notified once when raised and once when it recovers (see tds_pipelines.notify).

The partial unique index ux_tds_alerts_open_incident (incident WHERE resolved_at IS NULL) keeps one open row
per key even when several processes raise the same incident at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, null, select
from sqlalchemy.dialects import postgresql, sqlite

from tds_pipelines.erp.db import as_utc, clean_text, utcnow, write_transaction
from tds_pipelines.erp.tables import alerts

WARN, ERROR = "WARN", "ERROR"
SEVERITIES = (WARN, ERROR)
RAISED, RECOVERED = "raised", "recovered"
_OPEN = alerts.c.resolved_at.is_(None)  # the predicate of ux_tds_alerts_open_incident
# Each pass of raise_alert's loop needs another process to resolve the incident in between: a few suffice.
_RAISE_ATTEMPTS = 5
a = alerts


@dataclass(frozen=True)
class Alert:
    """One row of ``tds_alerts``; times are aware UTC."""

    id: int
    created_at: datetime
    kind: str
    severity: str
    entity: str | None
    message: str
    details: dict | None
    resolved_at: datetime | None
    incident: str | None
    last_seen_at: datetime | None
    occurrences: int
    notified_at: datetime | None
    recovery_notified_at: datetime | None


_TIMES = ("created_at", "resolved_at", "last_seen_at", "notified_at", "recovery_notified_at")
_COLUMNS = [a.c[name] for name in Alert.__dataclass_fields__]


def _alert(row) -> Alert:
    values = row._asdict()
    return Alert(**values | {name: as_utc(values[name]) for name in _TIMES})


def _insert(conn: Connection):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(a)


def raise_alert(
    engine: Engine,
    incident: str,
    kind: str,
    severity: str,
    message: str,
    entity: str | None = None,
    details: dict | None = None,
) -> tuple[Alert, bool]:
    """Report `incident`: a new open alert (returned with True), or, when one is open already, that alert seen
    once more (occurrences + 1, last_seen_at now, the new message and details, ERROR if it is now an ERROR;
    returned with False).

    Concurrent raises of a new incident insert one row: the others' INSERT yields to the index and they
    count an occurrence on the winner's row instead."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    now = utcnow()
    message = clean_text(message)
    stored_details = null() if details is None else details  # SQL NULL, not the JSON value null
    fresh = {
        "incident": clean_text(incident),
        "kind": clean_text(kind),
        "severity": severity,
        "entity": None if entity is None else clean_text(entity),
        "message": message,
        "details": stored_details,
        "created_at": now,
        "last_seen_at": now,
        "occurrences": 1,
    }
    seen = (
        a.update()
        .where(a.c.incident == fresh["incident"], _OPEN)
        .values(last_seen_at=now, occurrences=a.c.occurrences + 1, message=message, details=stored_details)
        .values({"severity": ERROR} if severity == ERROR else {})  # an incident may worsen, never soften
        .returning(*_COLUMNS)
    )
    with write_transaction(engine) as conn:
        insert = (
            _insert(conn)
            .values(fresh)
            .on_conflict_do_nothing(index_elements=[a.c.incident], index_where=_OPEN)
            .returning(*_COLUMNS)
        )
        for _ in range(_RAISE_ATTEMPTS):
            if (row := conn.execute(insert).first()) is not None:
                return _alert(row), True
            # The open row exists, committed: an INSERT conflicting with an open transaction waits for its end.
            if (row := conn.execute(seen).first()) is not None:
                return _alert(row), False
            # Resolved between the two statements: the incident is new again.
    raise RuntimeError(f"incident {incident!r} kept being resolved while raised")


def resolve_alert(engine: Engine, incident: str) -> Alert | None:
    """Resolve the open alert of `incident` (resolved_at now) and return it; None when none is open."""
    with write_transaction(engine) as conn:
        resolved = (
            a.update()
            .where(a.c.incident == clean_text(incident), _OPEN)
            .values(resolved_at=utcnow())
            .returning(*_COLUMNS)
        )
        row = conn.execute(resolved).first()
    return _alert(row) if row else None


def open_alerts(engine: Engine) -> list[Alert]:
    """The alerts not resolved, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(*_COLUMNS).where(_OPEN).order_by(a.c.created_at.desc(), a.c.id.desc()))
        return [_alert(row) for row in rows]


def get_alert(engine: Engine, alert_id: int) -> Alert | None:
    """One alert by id, open or resolved (None when there is none)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(a.c.id == alert_id)).first()
    return _alert(row) if row else None


def pending_notifications(engine: Engine) -> list[tuple[Alert, str]]:
    """What is still to be told, oldest event first: (alert, "raised") for open alerts not notified yet, and
    (alert, "recovered") for resolved alerts whose raise was notified and whose recovery was not. An alert
    resolved before its raise was notified is never told: nobody heard of it, so its recovery is no news."""
    raised = _OPEN & a.c.notified_at.is_(None)
    recovered = a.c.resolved_at.is_not(None) & a.c.notified_at.is_not(None) & a.c.recovery_notified_at.is_(None)
    query = (
        select(*_COLUMNS)
        .where(raised | recovered)
        .order_by(func.coalesce(a.c.resolved_at, a.c.created_at), a.c.id)  # when each event happened
    )
    with engine.connect() as conn:
        return [
            (alert, RAISED if alert.resolved_at is None else RECOVERED) for alert in map(_alert, conn.execute(query))
        ]


def mark_notified(engine: Engine, alert_id: int, what: str) -> None:
    """Record that the alert's raise (`what` "raised") or recovery ("recovered") was told; a time already set
    is kept (the first notification is the one that counts)."""
    column = {RAISED: a.c.notified_at, RECOVERED: a.c.recovery_notified_at}.get(what)
    if column is None:
        raise ValueError(f"what must be {RAISED!r} or {RECOVERED!r}, got {what!r}")
    with write_transaction(engine) as conn:
        conn.execute(a.update().where(a.c.id == alert_id, column.is_(None)).values({column: utcnow()}))
