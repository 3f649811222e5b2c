"""Exceptions of the Zoho client. Each carries what a person needs to act, and never a secret."""

from __future__ import annotations

from datetime import datetime


class ZohoError(Exception):
    """A Zoho call failed: `code` is Zoho's error code (None when the answer had none), `status` the HTTP
    status, `path` the API path (no secrets), `hint` what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: int | None = None,
        path: str | None = None,
        record_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.status = status
        self.path = path
        self.record_id = record_id
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        where = []
        if self.path:
            where.append(f"path {self.path}")
        if self.record_id:
            where.append(f"record {self.record_id}")
        if self.code is not None:
            where.append(f"Zoho code {self.code}")
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        if where:
            parts.append(f"({', '.join(where)})")
        if self.hint:
            parts.append(f"- {self.hint}")
        return " ".join(parts)

    def __reduce__(self):
        # Picklable with every attribute (multiprocessing, Dagster), whatever the subclass's signature.
        return (_restore, (type(self), dict(self.__dict__)))


def _restore(cls: type[ZohoError], state: dict) -> ZohoError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    Exception.__init__(error, error._render())
    return error


class ZohoAuthError(ZohoError):
    """Zoho Accounts refused the credentials (invalid_code, invalid_client, invalid_client_secret), or a call
    carried no usable auth header (code 14)."""


class ZohoRefreshThrottled(ZohoError):
    """Zoho Accounts answered "Access Denied": too many token refreshes. Nobody asks again before
    `blocked_until`."""

    def __init__(self, message: str, *, blocked_until: datetime, **kwargs) -> None:
        self.blocked_until = blocked_until
        kwargs.setdefault(
            "hint",
            f"no process refreshes again before {blocked_until.isoformat(timespec='seconds')}; "
            "check that nothing else uses this refresh token",
        )
        super().__init__(message, **kwargs)


class ZohoPermissionError(ZohoError):
    """A second code 57 right after a fresh token: the token lacks a scope for this call."""


class ZohoNotFound(ZohoError):
    """Code 1002: the record does not exist (any more)."""


class ZohoRateLimited(ZohoError):
    """Code 44: the organization's per-minute limit was exceeded (the shared budget should prevent it)."""


class ZohoQuotaExhausted(ZohoError):
    """Code 45 (or a recorded block from it): the organization's daily quota is spent until `reset_at`."""

    def __init__(self, message: str, *, reset_at: datetime, **kwargs) -> None:
        self.reset_at = reset_at
        kwargs.setdefault("hint", f"no process calls Zoho again before {reset_at.isoformat(timespec='seconds')}")
        super().__init__(message, **kwargs)


class ZohoBadResponse(ZohoError):
    """Zoho's answer could not be read (malformed JSON, missing keys) even after retries."""


class BudgetShareExceeded(ZohoError):
    """A job spent its floor of the daily quota and nothing is left to borrow (the organization's calls today,
    `used_total`, plus the other jobs' unspent floors, `reserved_for_others`, reach `daily_limit`): the job
    should skip, reporting these figures."""

    def __init__(
        self,
        job: str,
        used: int,
        share: int,
        daily_limit: int,
        fraction: float,
        used_total: int,
        reserved_for_others: int,
    ) -> None:
        self.job = job
        self.used = used
        self.share = share
        self.daily_limit = daily_limit
        self.fraction = fraction
        self.used_total = used_total
        self.reserved_for_others = reserved_for_others
        super().__init__(
            f"job {job!r} has used {used} of its {share} API calls today ({fraction:.0%} of the daily quota of "
            f"{daily_limit}) and nothing is left to borrow: the organization made {used_total} calls today and "
            f"the other jobs' unspent shares hold {reserved_for_others}",
            hint="skipped to leave the rest of the quota to other jobs; it runs again after the daily reset "
            "(or raise its share)",
        )
