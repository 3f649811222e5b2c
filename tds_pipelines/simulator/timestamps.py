"""Zoho's timestamp and date formats: `2024-03-18T14:02:51+0300` (no colon in the offset), `YYYY-MM-DD`."""

from __future__ import annotations

import calendar
import re
import time
from datetime import date

from tds_pipelines.simulator.config import ORG_UTC_OFFSET, ORG_UTC_OFFSET_SECONDS

_TS = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+\- ]\d{2}:?\d{2})?$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def format_ts(epoch: float) -> str:
    """An instant as Zoho writes it, in the organization's zone."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch + ORG_UTC_OFFSET_SECONDS)) + ORG_UTC_OFFSET


def now_ts() -> str:
    return format_ts(time.time())


def parse_ts(value: object) -> float | None:
    """Epoch seconds of a Zoho timestamp, or None when absent or unreadable.

    Accepts `+0300`, `+03:00`, `Z`, and a space where an unencoded `+` was decoded from a query string.
    Without an offset the organization's zone is assumed; a bare date means its midnight there."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    m = _TS.match(text)
    if m is None:
        d = _DATE.match(text)
        if d is None:
            return None
        try:
            return calendar.timegm((int(d[1]), int(d[2]), int(d[3]), 0, 0, 0)) - ORG_UTC_OFFSET_SECONDS
        except ValueError:
            return None
    year, month, day, hour, minute = (int(m[i]) for i in range(1, 6))
    second = int(m[6] or 0)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    offset_text = m[7]
    if offset_text is None:
        offset = ORG_UTC_OFFSET_SECONDS
    elif offset_text == "Z":
        offset = 0
    else:
        sign = -1 if offset_text[0] == "-" else 1
        digits = offset_text[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return calendar.timegm((year, month, day, hour, minute, second)) - offset


def parse_date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if _DATE.match(value or "") else None
    except ValueError:
        return None


def org_day_and_seconds_to_reset(now: float | None = None) -> tuple[str, int]:
    """The organization's current calendar day and seconds until its next midnight (daily quota reset)."""
    local = (time.time() if now is None else now) + ORG_UTC_OFFSET_SECONDS
    day = time.strftime("%Y-%m-%d", time.gmtime(local))
    return day, int(86400 - (local % 86400))
