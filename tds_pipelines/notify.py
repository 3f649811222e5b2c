"""Alerts told to people: each pending notification of ``tds_alerts`` POSTed to a Slack-compatible incoming
webhook (TDS_ALERT_WEBHOOK_URL), once when raised and once when recovered.

The webhook URL is a secret (whoever holds it can post to the channel): it is never logged, raised or
returned; a failure names only the setting.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta

import requests
from sqlalchemy import Engine

from tds_pipelines.erp.alerts import ERROR, RECOVERED, WARN, Alert, mark_notified, pending_notifications

log = logging.getLogger(__name__)

_MESSAGE_CHARS = 3000  # Slack truncates long texts; an error's start says what went wrong
_ICONS = {ERROR: ":rotating_light:", WARN: ":warning:"}
_RECOVERED_ICON = ":white_check_mark:"


def _escaped(text: str) -> str:
    """`text` with the three characters Slack reads as markup escaped (an error may well hold ``<...>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "unknown"


def _lasted(span: timedelta) -> str:
    """A duration as people say it: ``2d 3h``, ``1h 5m``, ``4m``, ``30s``."""
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def alert_message(alert: Alert, what: str, ui_url: str | None) -> dict:
    """The webhook body for `alert`'s raise or recovery (`what`): a ``text`` saying what failed, how badly,
    since when, how often, and where to look."""
    subject = alert.kind if alert.entity is None else f"{alert.kind} ({alert.entity})"
    message = alert.message if len(alert.message) <= _MESSAGE_CHARS else alert.message[:_MESSAGE_CHARS] + "…"
    times = "once" if alert.occurrences == 1 else f"{alert.occurrences} times"
    if what == RECOVERED:
        lasted = _lasted((alert.resolved_at or alert.created_at) - alert.created_at)
        head = f"{_RECOVERED_ICON} TDS recovered: {subject} ({alert.severity})"
        status = f"Lasted {lasted}: from {_when(alert.created_at)} to {_when(alert.resolved_at)}, seen {times}."
    else:
        head = f"{_ICONS.get(alert.severity, '')} TDS {alert.severity}: {subject}".strip()
        status = f"Since {_when(alert.created_at)}, seen {times} (last {_when(alert.last_seen_at)})."
    look = "Look: `tds status`" + (f" and the Dagster UI {ui_url}" if ui_url else "")
    lines = [_escaped(head), _escaped(message), status, f"Incident: `{_escaped(alert.incident or '')}`", look]
    return {"text": "\n".join(lines)}


def notify_pending(engine: Engine, url: str | None = None, timeout: float = 10) -> int:
    """POST every pending notification to `url` (default TDS_ALERT_WEBHOOK_URL), oldest first, one request
    each, and mark it notified once the webhook answers 2xx; returns how many were sent. Without a URL nothing
    is sent (the alerts stay in the table). A failure leaves the notification pending for the next call; an
    unreachable, failing (5xx) or throttling (429) webhook ends this call's sending."""
    url = url or os.environ.get("TDS_ALERT_WEBHOOK_URL")
    if not url:
        return 0
    ui_url = os.environ.get("TDS_DAGSTER_UI_URL") or None
    sent = 0
    for alert, what in pending_notifications(engine):
        try:
            response = requests.post(url, json=alert_message(alert, what, ui_url), timeout=timeout)
        except requests.RequestException as exc:  # its text holds the URL: only the type is told
            log.warning("alert %s (%s) not sent to TDS_ALERT_WEBHOOK_URL: %s", alert.id, what, type(exc).__name__)
            break  # unreachable: the rest would wait out the same timeout
        if not 200 <= response.status_code < 300:
            log.warning(
                "alert %s (%s) not sent: TDS_ALERT_WEBHOOK_URL answered HTTP %s", alert.id, what, response.status_code
            )
            if response.status_code == 429 or response.status_code >= 500:
                break  # down or throttling: the rest waits for the next call
            continue  # this body was refused: the others may pass
        mark_notified(engine, alert.id, what)
        sent += 1
    return sent
