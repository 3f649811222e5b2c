"""Zoho's API limits per organization, and the OAuth refresh throttle.

What counts (the stricter plausible reading of Zoho's documents, DESIGN §3 and zoho-api.md §3):
- Books and Inventory draw on ONE budget per organization.
- Only API calls that passed authentication and named the organization are counted; OAuth token calls,
  admin routes and unknown URLs are not.
- Every such call enters the 60-second sliding window, *including calls that are rejected* (44, 45, 1070):
  a client that keeps hammering while blocked stays blocked.
- The daily quota counts every call that was not rejected by a limit (errors like 1002 and injected faults
  count); it resets at midnight in the organization's zone (+0300). Rejected calls do not count there.
- Check order: concurrency (1070), then the minute window (44), then the daily quota (45).
- Headers on every API answer: ``X-Rate-Limit-Limit`` (daily quota), ``X-Rate-Limit-Remaining`` (left
  today), ``X-Rate-Limit-Reset`` (seconds until the daily reset). With an unlimited quota (0) the limit and
  remaining are reported as 1000000000.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from tds_pipelines.simulator.timestamps import org_day_and_seconds_to_reset

UNLIMITED_REPORTED = 1_000_000_000
WINDOW_SECONDS = 60.0

MINUTE_MESSAGE = (
    "For security reasons your organization has been blocked as it have exceeded the maximum number of "
    "requests per minute that can originate from an organization."
)
CONCURRENCY_MESSAGE = (
    "You have reached the maximum number of in process requests allowed. Kindly try again after some time."
)


def daily_message(limit: int) -> str:
    return f"The API call for this organization has exceeded the maximum call rate limit of {limit}."


@dataclass
class _OrgUsage:
    window: deque = field(default_factory=deque)  # monotonic times of calls in the last 60 s
    day: str = ""
    day_count: int = 0
    in_flight: int = 0


@dataclass
class Admission:
    """The verdict on one API call; `code` is 0 when admitted (then `release()` must follow)."""

    code: int
    message: str = ""


class ApiLimits:
    """Per-minute window, daily quota and in-flight cap, shared by Books and Inventory."""

    def __init__(self, per_minute: int, daily: int, concurrency: int) -> None:
        self.per_minute = per_minute
        self.daily = daily
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._orgs: dict[str, _OrgUsage] = {}
        self.peak_window = 0
        self.peak_in_flight = 0

    def _usage(self, org: str) -> _OrgUsage:
        usage = self._orgs.get(org)
        if usage is None:
            usage = self._orgs[org] = _OrgUsage()
        day, _ = org_day_and_seconds_to_reset()
        if usage.day != day:
            usage.day, usage.day_count = day, 0
        return usage

    def admit(self, org: str) -> Admission:
        now = time.monotonic()
        with self._lock:
            usage = self._usage(org)
            window = usage.window
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            window.append(now)
            self.peak_window = max(self.peak_window, len(window))
            if self.concurrency and usage.in_flight >= self.concurrency:
                return Admission(1070, CONCURRENCY_MESSAGE)
            if self.per_minute and len(window) > self.per_minute:
                return Admission(44, MINUTE_MESSAGE)
            if self.daily and usage.day_count >= self.daily:
                return Admission(45, daily_message(self.daily))
            usage.day_count += 1
            usage.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, usage.in_flight)
            return Admission(0)

    def release(self, org: str) -> None:
        with self._lock:
            usage = self._orgs.get(org)
            if usage is not None and usage.in_flight > 0:
                usage.in_flight -= 1

    def headers(self, org: str) -> dict[str, str]:
        with self._lock:
            usage = self._usage(org)
            used = usage.day_count
        _, reset = org_day_and_seconds_to_reset()
        limit = self.daily or UNLIMITED_REPORTED
        return {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(max(0, limit - used)),
            "X-Rate-Limit-Reset": str(reset),
        }

    def snapshot(self) -> dict:
        now = time.monotonic()
        with self._lock:
            orgs = {
                org: {
                    "window_calls": sum(1 for t in u.window if t > now - WINDOW_SECONDS),
                    "day": u.day,
                    "day_count": u.day_count,
                    "in_flight": u.in_flight,
                }
                for org, u in self._orgs.items()
            }
        return {
            "rate_limit_per_minute": self.per_minute,
            "daily_limit": self.daily,
            "concurrency_limit": self.concurrency,
            "organizations": orgs,
            "in_flight": sum(o["in_flight"] for o in orgs.values()),
        }

    def reset_usage(self) -> None:
        """Forget windows and daily counts (not in-flight calls): a fresh day and minute."""
        with self._lock:
            for usage in self._orgs.values():
                usage.window.clear()
                usage.day_count = 0

    def reset_peaks(self) -> None:
        with self._lock:
            self.peak_window = 0
            self.peak_in_flight = 0


class RefreshThrottle:
    """At most `limit` access tokens per `window` seconds per refresh token; past it, blocked for `block`."""

    def __init__(self, limit: int, window: float, block: float) -> None:
        self.limit, self.window, self.block = limit, window, block
        self._lock = threading.Lock()
        self._issued: dict[str, deque] = {}
        self._blocked_until: dict[str, float] = {}

    def allow(self, refresh_token: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._blocked_until.get(refresh_token, 0.0) > now:
                return False
            issued = self._issued.setdefault(refresh_token, deque())
            while issued and issued[0] <= now - self.window:
                issued.popleft()
            if self.limit and len(issued) >= self.limit:
                self._blocked_until[refresh_token] = now + self.block
                return False
            issued.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._issued.clear()
            self._blocked_until.clear()
