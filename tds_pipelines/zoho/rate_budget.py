"""The API budget shared by every process: Zoho's per-minute limit and the daily quota, split per job.

Every call TDS makes is a row in ``tds_api_calls``. Before a call, a process locks its organization's
``tds_rate_budget`` row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), counts
the calls of the last 60 seconds (plus a skew margin) and either inserts its own row or learns how long
until the oldest call leaves the window, then sleeps that long outside the lock. The same row records blocks
that every process honours: a spent daily quota (code 45) until its reset, a per-minute breach (code 44)
for a minute, and the daily limit and remaining count Zoho reports in X-Rate-Limit-* headers.

Daily shares are floors: each job's fraction of the daily quota is reserved for it, and a job past its floor
may borrow what is neither used by the organization today nor reserved as another job's unspent floor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, delete, func, select, update

from tds_pipelines import settings
from tds_pipelines.erp.db import as_utc, insert_ignore, utcnow, write_transaction
from tds_pipelines.erp.tables import api_calls, rate_budget
from tds_pipelines.zoho.errors import BudgetShareExceeded, ZohoQuotaExhausted, ZohoRateLimited

log = logging.getLogger(__name__)

# Fractions of the daily quota reserved per job (floors, see ShareStatus); jobs not named here share "other".
# Webhook-driven detail fetches and the nightly full sync come first (DESIGN §3, API economy).
DEFAULT_SHARES: dict[str, float] = {
    "full_sync": 0.3,
    "process_webhook_queue": 0.25,
    "incremental_sync": 0.15,
    "stock_sync": 0.1,
    "statistics_comparison": 0.05,
    "other": 0.15,  # manual materializations and backfills from the UI, `tds sync`
}
OTHER = "other"
WINDOW_SECONDS = 60.0
SHARE_RECOUNT_EVERY = 20  # calls between two counts of the job's calls today
_QUOTA = "quota"
_PER_MINUTE = "per_minute"


@dataclass(frozen=True)
class ShareStatus:
    """A job's standing today (`bucket` is the job or "other"): it `used` that many calls of its floor `share`
    (`fraction` of `daily_limit`); the organization made `used_total` calls today (TDS's own, or more when
    Zoho's X-Rate-Limit-Remaining says so: other apps' calls count); the other buckets' unspent floors are
    `reserved_for_others`. The job may call while under its floor, or past it while
    `used_total + reserved_for_others < daily_limit`: `available` is how many calls that leaves it today."""

    job: str
    bucket: str
    used: int
    share: int
    daily_limit: int
    fraction: float
    used_total: int
    reserved_for_others: int
    available: int

    @property
    def remaining(self) -> int:
        """Calls left of the job's own floor (borrowing aside)."""
        return max(0, self.share - self.used)


class RateBudget:
    """Draws calls for `job` from the budget of `organization_id`, shared with every other process.

    `per_minute` is the sliding-window limit (Zoho: 100), `daily_limit` the plan's daily quota (None: as Zoho
    reports it in X-Rate-Limit-Limit; unknown means shares are not enforced yet), `shares` maps job to the
    fraction of the daily quota reserved for it (None: DEFAULT_SHARES; {}: no shares), `skew_margin` widens
    the window to absorb latency and clock skew, `max_wait` bounds one `acquire`."""

    def __init__(
        self,
        engine: Engine,
        organization_id: str,
        *,
        job: str = "manual",
        per_minute: int = 100,
        daily_limit: int | None = None,
        shares: Mapping[str, float] | None = None,
        timezone: str | None = None,
        skew_margin: float = 0.5,
        max_wait: float = 600.0,
        keep_days: float = 2.0,
        prune_every: int = 1000,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.engine = engine
        self.organization_id = str(organization_id)
        self.job = job
        self.per_minute = per_minute
        self.daily_limit = daily_limit
        self.shares = dict(DEFAULT_SHARES if shares is None else shares)
        self.timezone = ZoneInfo(timezone or settings.timezone())
        self.skew_margin = skew_margin
        self.max_wait = max_wait
        self.keep_days = keep_days
        self.prune_every = prune_every
        self.acquired = 0  # calls this instance drew
        self.waited_seconds = 0.0  # time spent waiting for the window
        self._header_writes = 0
        self._share: ShareStatus | None = None
        self._share_counted_at: int | None = None
        self._last_limit: int | None = None

    # -- drawing calls ---------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Take one call from the budget, waiting (bounded by `max_wait`) while the minute is full.

        Raises BudgetShareExceeded when the job spent its daily floor and nothing is left to borrow,
        ZohoQuotaExhausted while a daily quota block holds, ZohoRateLimited when the wait would exceed
        `max_wait`."""
        if self.acquired % self.prune_every == 0:
            self.prune()
        deadline = time.monotonic() + self.max_wait
        while True:
            wait = self._try_acquire()
            if wait is None:
                self.acquired += 1
                return
            if time.monotonic() + wait > deadline:
                raise ZohoRateLimited(
                    f"the shared per-minute budget of organization {self.organization_id} stayed full "
                    f"for more than {self.max_wait:.0f} s",
                    hint="another process may be calling without the shared budget, or per_minute is too low",
                )
            log.debug("per-minute budget full; waiting %.2f s", wait)
            self.waited_seconds += wait
            time.sleep(wait)

    def _try_acquire(self) -> float | None:
        """Insert this call if the window has room (None), else the seconds to wait before trying again."""
        with write_transaction(self.engine, durable=False) as conn:
            row = self._locked_row(conn)
            now = utcnow()
            blocked_until = as_utc(row.blocked_until)
            if blocked_until and blocked_until > now:
                if (row.block_reason or "").startswith(_QUOTA):
                    raise ZohoQuotaExhausted(
                        f"the daily API quota of organization {self.organization_id} is spent",
                        code=45,
                        reset_at=blocked_until,
                    )
                return max(0.05, (blocked_until - now).total_seconds())
            status = self._recent_share_status(conn, row)
            if status is not None and status.available <= 0:
                raise BudgetShareExceeded(
                    status.job,
                    status.used,
                    status.share,
                    status.daily_limit,
                    status.fraction,
                    status.used_total,
                    status.reserved_for_others,
                )
            window_start = now - timedelta(seconds=WINDOW_SECONDS + self.skew_margin)
            # The per_minute-th newest call in the window, if there is one, must leave it before one more fits
            # (an index scan of at most per_minute rows, whatever the volume).
            leaving = conn.execute(
                select(api_calls.c.called_at)
                .where(api_calls.c.organization_id == self.organization_id, api_calls.c.called_at > window_start)
                .order_by(api_calls.c.called_at.desc())
                .offset(self.per_minute - 1)
                .limit(1)
            ).scalar()
            if leaving is not None:
                frees_at = as_utc(leaving) + timedelta(seconds=WINDOW_SECONDS + self.skew_margin)
                return max(0.05, (frees_at - now).total_seconds())
            conn.execute(api_calls.insert().values(organization_id=self.organization_id, called_at=now, job=self.job))
            return None

    def _locked_row(self, conn):
        """The organization's budget row, locked; created on first use."""
        query = select(rate_budget).where(rate_budget.c.organization_id == self.organization_id).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            insert_ignore(
                conn,
                rate_budget,
                {"organization_id": self.organization_id, "per_minute": self.per_minute, "updated_at": utcnow()},
            )
            row = conn.execute(query).one()
        return row

    # -- daily shares ----------------------------------------------------------------------------------

    def share_status(self) -> ShareStatus | None:
        """This job's standing today, `available` included (see ShareStatus), or None when no daily limit is
        known or the job has no share (shares disabled)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(rate_budget).where(rate_budget.c.organization_id == self.organization_id)).first()
            return self._share_status(conn, row)

    def _recent_share_status(self, conn, row) -> ShareStatus | None:
        """The share status, counted every SHARE_RECOUNT_EVERY calls and estimated from this instance's own
        calls in between (counting today's log on every call would cost O(calls today) per call), but counted
        on every call past the job's floor: within its floor nobody else can take a job's calls, while what it
        may borrow shrinks with every other job's calls."""
        counted_at = self._share_counted_at
        if counted_at is not None and self.acquired - counted_at < SHARE_RECOUNT_EVERY:
            if self._share is None:
                return None
            calls = self.acquired - counted_at
            # Each own call takes one from the floor or from what may be borrowed: `available` drops by one.
            estimate = replace(
                self._share,
                used=self._share.used + calls,
                used_total=self._share.used_total + calls,
                available=max(0, self._share.available - calls),
            )
            if estimate.used < estimate.share:
                return estimate
        self._share, self._share_counted_at = self._share_status(conn, row), self.acquired
        return self._share

    def _share_status(self, conn, row) -> ShareStatus | None:
        limit = self.daily_limit or (row.daily_limit if row is not None else None)
        bucket = self.job if self.job in self.shares else OTHER
        fraction = self.shares.get(bucket)
        if not limit or fraction is None:
            return None
        day_start = self.day_start()
        used_by_bucket: dict[str, int] = {}
        for job, calls in conn.execute(
            select(api_calls.c.job, func.count())
            .where(api_calls.c.organization_id == self.organization_id, api_calls.c.called_at >= day_start)
            .group_by(api_calls.c.job)
        ):
            name = job if job in self.shares else OTHER
            used_by_bucket[name] = used_by_bucket.get(name, 0) + calls
        floors = {name: int(share * limit) for name, share in self.shares.items()}
        used, floor = used_by_bucket.get(bucket, 0), floors[bucket]
        used_total = max(sum(used_by_bucket.values()), self._reported_used(conn, row, limit, day_start))
        reserved = sum(max(0, f - used_by_bucket.get(name, 0)) for name, f in floors.items() if name != bucket)
        available = max(0, floor - used, limit - used_total - reserved)
        return ShareStatus(self.job, bucket, used, floor, int(limit), fraction, used_total, reserved, available)

    def _reported_used(self, conn, row, limit: int, day_start: datetime) -> int:
        """The organization's calls today as Zoho last reported them (daily limit − X-Rate-Limit-Remaining, so
        other apps' calls count) plus TDS's calls logged since that report; 0 without a report today."""
        reported_at = as_utc(row.updated_at) if row is not None and row.daily_remaining is not None else None
        if reported_at is None or reported_at < day_start:
            return 0
        since = conn.execute(
            select(func.count()).where(
                api_calls.c.organization_id == self.organization_id, api_calls.c.called_at > reported_at
            )
        ).scalar_one()
        return (row.daily_limit or limit) - row.daily_remaining + since

    def day_start(self, now: datetime | None = None) -> datetime:
        """Midnight of today in the organization's timezone (TDS_TIMEZONE), as UTC."""
        local = (now or utcnow()).astimezone(self.timezone)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self.timezone)
        return as_utc(midnight)

    def next_midnight(self, now: datetime | None = None) -> datetime:
        """The next midnight in the organization's timezone, as UTC: the assumed daily quota reset."""
        local = (now or utcnow()).astimezone(self.timezone)
        tomorrow = local.date() + timedelta(days=1)
        return as_utc(datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=self.timezone))

    def calls_today(self, job: str | None = None) -> int:
        """Calls of this organization today (of `job` when given), from the shared log."""
        query = select(func.count()).where(
            api_calls.c.organization_id == self.organization_id, api_calls.c.called_at >= self.day_start()
        )
        if job is not None:
            query = query.where(api_calls.c.job == job)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    # -- what Zoho tells us ----------------------------------------------------------------------------

    def record_headers(self, headers: Mapping[str, str]) -> None:
        """Store the daily limit, remaining calls and reset time from X-Rate-Limit-* headers (written when
        the limit changes, every 10th answer, or when few calls remain, to keep writes cheap)."""
        limit = _int(headers.get("X-Rate-Limit-Limit"))
        remaining = _int(headers.get("X-Rate-Limit-Remaining"))
        if limit is None and remaining is None:
            return
        self._header_writes += 1
        low = remaining is not None and limit is not None and remaining <= max(5, limit // 20)
        if limit == self._last_limit and self._header_writes % 10 != 1 and not low:
            return
        self._last_limit = limit
        values: dict = {"updated_at": utcnow()}
        if limit is not None:
            values["daily_limit"] = limit
        if remaining is not None:
            values["daily_remaining"] = remaining
        reset_at = reset_time(headers.get("X-Rate-Limit-Reset"))
        if reset_at is not None:
            values["daily_reset_at"] = reset_at
        with write_transaction(self.engine) as conn:
            self._locked_row(conn)
            conn.execute(
                update(rate_budget).where(rate_budget.c.organization_id == self.organization_id).values(values)
            )

    def block_quota(self, reset_at: datetime | None = None) -> datetime:
        """Record that the daily quota is spent (code 45): no process calls before `reset_at` (default:
        the reset Zoho last reported, else the next midnight in TDS_TIMEZONE). Returns the reset time."""
        with write_transaction(self.engine, durable=False) as conn:
            row = self._locked_row(conn)
            now = utcnow()
            if reset_at is None:
                reported = as_utc(row.daily_reset_at)
                reset_at = reported if reported and reported > now else self.next_midnight(now)
            conn.execute(
                update(rate_budget)
                .where(rate_budget.c.organization_id == self.organization_id)
                .values(
                    blocked_until=reset_at,
                    block_reason=f"{_QUOTA}: code 45",
                    daily_remaining=0,
                    updated_at=now,
                )
            )
        log.warning(
            "Zoho daily quota of organization %s spent; blocked until %s",
            self.organization_id,
            reset_at.isoformat(),
        )
        return reset_at

    def block_per_minute(self, seconds: float = 60.0) -> datetime:
        """Record a per-minute breach (code 44): every process waits `seconds` before its next call."""
        with write_transaction(self.engine, durable=False) as conn:
            row = self._locked_row(conn)
            now = utcnow()
            until = now + timedelta(seconds=seconds)
            current = as_utc(row.blocked_until)
            if current and current > until:
                return current
            conn.execute(
                update(rate_budget)
                .where(rate_budget.c.organization_id == self.organization_id)
                # updated_at is left alone: it dates Zoho's daily figures (see _reported_used)
                .values(blocked_until=until, block_reason=f"{_PER_MINUTE}: code 44")
            )
        log.warning("Zoho per-minute limit hit (code 44); all processes pause until %s", until.isoformat())
        return until

    def prune(self) -> int:
        """Delete this organization's call log rows older than `keep_days`; returns how many."""
        cutoff = utcnow() - timedelta(days=self.keep_days)
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(api_calls).where(
                    api_calls.c.organization_id == self.organization_id, api_calls.c.called_at < cutoff
                )
            )
        return result.rowcount or 0


def reset_time(value: str | None, now: datetime | None = None) -> datetime | None:
    """X-Rate-Limit-Reset as an instant: epoch seconds (or milliseconds) when large, else seconds from now."""
    number = _int(value)
    if number is None or number < 0:
        return None
    now = now or utcnow()
    if number > 10**12:
        return datetime.fromtimestamp(number / 1000, tz=now.tzinfo)
    if number > 10**9:
        return datetime.fromtimestamp(number, tz=now.tzinfo)
    return now + timedelta(seconds=number)


def _int(value) -> int | None:
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return None
