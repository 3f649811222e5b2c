"""The Zoho Books / Inventory client: shared token, shared budget, paging, retries, Zoho's error codes.

One client per process (not thread-safe). Every HTTP request, retries included, draws one call from the
shared `RateBudget` first; the access token comes from the shared `TokenCache`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import requests
from sqlalchemy import Engine

from tds_pipelines import settings
from tds_pipelines.zoho.credentials import ZohoCredentials, scrub
from tds_pipelines.zoho.errors import (
    ZohoAuthError,
    ZohoBadResponse,
    ZohoError,
    ZohoNotFound,
    ZohoPermissionError,
    ZohoQuotaExhausted,
    ZohoRateLimited,
)
from tds_pipelines.zoho.rate_budget import RateBudget, reset_time
from tds_pipelines.zoho.token_cache import TokenCache

log = logging.getLogger(__name__)

Api = Literal["books", "inventory"]
API_ROOTS: dict[str, str] = {"books": "/books/v3", "inventory": "/inventory/v1"}
PER_PAGE = 200
ITEM_DETAILS_CHUNK = 100


@dataclass
class Page:
    """One page of a listing: its number, its entries (see `_dedupe` for which copies of a record are kept;
    entries that are not JSON objects are passed through), whether Zoho says more pages follow, how many
    in-run duplicates were dropped, and Zoho's page_context."""

    number: int
    records: list[Any]
    has_more: bool
    duplicates: int = 0
    page_context: dict = field(default_factory=dict)


class _Retry(Exception):
    """A transient failure: try again after a backoff (or right away when `delay` is 0)."""

    def __init__(self, error: ZohoError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


class ZohoClient:
    """Calls Zoho Books (`api="books"`, /books/v3) and Inventory (`api="inventory"`, /inventory/v1) for one
    organization, on behalf of `job` (the name its calls are counted under for the daily shares).

    `per_minute`, `daily_limit` and `shares` configure the shared RateBudget; `timeout` is per request.
    A call that fails transiently (5xx, 429, timeouts, connection errors, code 1070, malformed JSON) is retried
    for `retry_for` seconds after its first failure, with exponential backoff and jitter from `backoff_base`
    up to `backoff_cap` seconds, or as long as a Retry-After header asks (capped by the time left);
    `max_retries`, when given, also bounds the number of retries."""

    def __init__(
        self,
        credentials: ZohoCredentials,
        engine: Engine,
        job: str = "manual",
        per_minute: int = 100,
        daily_limit: int | None = None,
        shares: Mapping[str, float] | None = None,
        timeout: float = 30,
        max_retries: int | None = None,
        *,
        retry_for: float = 300.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        session: requests.Session | None = None,
        timezone: str | None = None,
    ) -> None:
        self.credentials = credentials
        self.engine = engine
        self.job = job
        self.timeout = timeout
        self.max_retries = None if max_retries is None else max(0, max_retries)
        self.retry_for = retry_for
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "tds-pipelines"})
        self.tokens = TokenCache(credentials, engine, self.session, timeout=timeout)
        self.budget = RateBudget(
            engine,
            credentials.organization_id,
            job=job,
            per_minute=per_minute,
            daily_limit=daily_limit,
            shares=shares,
            timezone=timezone,
        )
        self.calls = 0  # HTTP requests to the API made by this client (retries included)
        self.retries = 0  # requests repeated after a transient failure
        self.duplicates = 0  # records dropped by in-run de-duplication

    @classmethod
    def from_env(cls, engine: Engine | None = None, job: str = "manual", **kwargs: Any) -> ZohoClient:
        """A client from the ZOHO_* variables (see ZohoCredentials.from_env) on `engine` (default: the ERP
        database), with the budget from TDS_ZOHO_CALLS_PER_MINUTE, TDS_ZOHO_DAILY_LIMIT and
        TDS_ZOHO_API_SHARES (a JSON object mapping job to its fraction of the daily quota)."""
        from tds_pipelines.erp.db import make_engine

        kwargs.setdefault("per_minute", settings.zoho_calls_per_minute())
        kwargs.setdefault("daily_limit", settings.zoho_daily_limit())
        kwargs.setdefault("shares", settings.zoho_api_shares())
        return cls(ZohoCredentials.from_env(), engine or make_engine(), job=job, **kwargs)

    @property
    def refreshes(self) -> int:
        """Token refreshes this client made itself (the shared cache spares most)."""
        return self.tokens.refreshes

    def usage(self) -> dict[str, float]:
        """Counters for run metadata: calls, retries, refreshes, duplicates, seconds waited for the budget."""
        return {
            "api_calls": self.calls,
            "retries": self.retries,
            "token_refreshes": self.refreshes,
            "duplicates_dropped": self.duplicates,
            "budget_wait_seconds": round(self.budget.waited_seconds, 1),
        }

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self) -> ZohoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls -----------------------------------------------------------------------------------------

    def get_json(self, api: Api, path: str, params: Mapping[str, Any] | None = None) -> dict:
        """GET `path` under the `api` root with `params` (plus organization_id) and return the answer.

        Retries transient failures (see the class); refreshes the token once on 401 code 57. Raises
        ZohoPermissionError (57 again), ZohoAuthError (14), ZohoNotFound (1002), ZohoQuotaExhausted (45),
        BudgetShareExceeded (this job's daily share is spent and nothing is left to borrow: nothing was sent),
        ZohoBadResponse (unreadable after retries), or ZohoError."""
        if api not in API_ROOTS:
            raise ValueError(f"api must be one of {', '.join(API_ROOTS)}, got {api!r}")
        query = {k: v for k, v in (params or {}).items() if v is not None}
        query["organization_id"] = self.credentials.organization_id
        refreshed = False
        attempt = 0
        failing_since: float | None = None  # the retry_for clock starts at the first failure, not at budget waits
        while True:
            self.budget.acquire()
            token = self.tokens.get()
            url = self.credentials.api_base(token.api_domain) + API_ROOTS[api] + path
            self.calls += 1
            try:
                resp = self._send(url, query, token.token, path)
                self.budget.record_headers(resp.headers)
                return self._judge(resp, path, refreshed)
            except _TokenRefused:
                refreshed = True
                self.tokens.invalidate(token.token)
                log.info("Zoho refused the access token (code 57) on %s; refreshing once", path)
            except _Retry as retry:
                if failing_since is None:
                    failing_since = time.monotonic()
                attempt = self._back_off(attempt, failing_since, retry)

    def _send(self, url: str, query: Mapping[str, Any], token: str, path: str) -> requests.Response:
        """One GET; a transport failure becomes a `_Retry`."""
        try:
            return self.session.get(
                url, params=query, headers={"Authorization": f"Zoho-oauthtoken {token}"}, timeout=self.timeout
            )
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            # `from None`: the transport exception may quote URLs, keep it out of the report.
            raise _Retry(ZohoError(f"{type(exc).__name__} calling Zoho", path=path, hint=_TRANSIENT_HINT)) from None

    def _judge(self, resp: requests.Response, path: str, refreshed: bool) -> dict:
        """The answer's body when it is a success; otherwise raise what the status and code mean."""
        status = resp.status_code
        try:
            body = resp.json()
        except ValueError:
            body = None
        code = _int(body.get("code")) if isinstance(body, dict) else None
        message = self._message(body, resp)
        wait = parse_retry_after(resp.headers.get("Retry-After")) if status == 429 or status >= 500 else None
        if status == 401 and code in (57, None):
            if not refreshed:
                raise _TokenRefused()
            raise ZohoPermissionError(
                f"Zoho refused a freshly refreshed token: {message}",
                code=code,
                status=status,
                path=path,
                hint="missing scope? the self client needs the READ scope of this module "
                "(ZohoBooks.<module>.READ / ZohoInventory.<module>.READ); make a new refresh token with it",
            )
        if code == 6041 or code == 6024:
            raise ZohoError(
                f"Zoho refused the organization: {message}",
                code=code,
                status=status,
                path=path,
                hint="check ZOHO_ORGANIZATION_ID (Books: Settings > Organization Profile)",
            )
        if code == 14:
            raise ZohoAuthError(f"Zoho found no usable auth header: {message}", code=code, status=status, path=path)
        if code == 44:
            self.budget.block_per_minute(wait or 60.0)  # Zoho's per-minute block lasts a minute unless it says
            raise _Retry(
                ZohoRateLimited(f"per-minute limit exceeded: {message}", code=code, status=status, path=path),
                delay=0,  # the shared budget now makes every process wait out the minute
            )
        if code == 45:
            reset_at = self.budget.block_quota(reset_time(resp.headers.get("X-Rate-Limit-Reset")))
            raise ZohoQuotaExhausted(
                f"Zoho's daily API quota is spent: {message}",
                code=code,
                status=status,
                path=path,
                reset_at=reset_at,
            )
        if code == 1070:
            raise _Retry(
                ZohoError(f"too many concurrent requests: {message}", code=code, status=status, path=path), wait
            )
        if status >= 500 or status == 429:
            raise _Retry(
                ZohoError(
                    f"Zoho answered HTTP {status}: {message}",
                    code=code,
                    status=status,
                    path=path,
                    hint=_TRANSIENT_HINT,
                ),
                wait,
            )
        if code == 1002:
            raise ZohoNotFound(f"not found: {message}", code=code, status=status, path=path, record_id=_record_id(path))
        if status >= 400 or (code not in (0, None)):
            raise ZohoError(f"Zoho refused the call: {message}", code=code, status=status, path=path)
        if not isinstance(body, dict):
            raise _Retry(ZohoBadResponse("Zoho's answer is not a JSON object", status=status, path=path))
        return body

    def _message(self, body: Any, resp: requests.Response) -> str:
        text = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else resp.text[:200]
        return scrub(" ".join(text.split()), self.credentials.secrets()) or f"HTTP {resp.status_code}"

    def _back_off(self, attempt: int, failing_since: float, retry: _Retry) -> int:
        """Sleep before the next attempt (the Retry-After delay, else exponential backoff with jitter, never past
        `retry_for`), or raise the failure once `retry_for` seconds have passed since the call first failed or
        `max_retries` retries are spent."""
        elapsed = time.monotonic() - failing_since
        left = self.retry_for - elapsed
        if left <= 0 or (self.max_retries is not None and attempt >= self.max_retries):
            error = retry.error
            gave_up = f"gave up after {attempt + 1} attempts in {elapsed:.1f} s"
            error.hint = f"{error.hint}; {gave_up}" if error.hint else gave_up
            error.args = (error._render(),)
            raise error from None  # its chain may hold the transport exception, which may quote URLs
        delay = retry.delay
        if delay is None:
            delay = min(self.backoff_cap, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
        delay = min(delay, left)
        log.warning("retrying Zoho call (%s) in %.2f s", retry.error, delay)
        self.retries += 1
        if delay > 0:
            time.sleep(delay)
        return attempt + 1

    # -- shapes ----------------------------------------------------------------------------------------

    def list_pages(
        self,
        api: Api,
        path: str,
        list_key: str,
        params: Mapping[str, Any] | None = None,
        *,
        id_field: str | None = None,
        per_page: int = PER_PAGE,
        start_page: int = 1,
        max_pages: int | None = None,
    ) -> Iterator[Page]:
        """The pages of a listing, until page_context.has_more_page is false (not on a short page).

        With `id_field`, a copy of a record identical to one already yielded in this listing is dropped (Zoho
        can repeat a record across pages, see `_dedupe`); the drops are counted in `Page.duplicates` and
        `self.duplicates`."""
        seen: set[tuple[str, str]] = set()
        number = start_page
        pages = 0
        while True:
            body = self.get_json(api, path, {**(params or {}), "page": number, "per_page": per_page})
            records = body.get(list_key)
            if not isinstance(records, list):
                raise ZohoBadResponse(f"the answer has no list {list_key!r}", path=path, code=_int(body.get("code")))
            context = body.get("page_context") if isinstance(body.get("page_context"), dict) else {}
            has_more = _truthy(context["has_more_page"]) if "has_more_page" in context else len(records) >= per_page
            kept, dropped = _dedupe(records, id_field, seen)
            self.duplicates += dropped
            yield Page(number, kept, has_more, dropped, context)
            pages += 1
            if not has_more or (max_pages is not None and pages >= max_pages):
                return
            if not records:
                raise ZohoBadResponse(f"page {number} is empty yet claims more pages follow", path=path)
            number += 1

    def list_records(
        self, api: Api, path: str, list_key: str, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[dict]:
        """The records of every page of a listing (see `list_pages`)."""
        for page in self.list_pages(api, path, list_key, params, **kwargs):
            yield from page.records

    def get_record(self, api: Api, path: str, get_key: str, params: Mapping[str, Any] | None = None) -> dict:
        """One record (the single-record GET, e.g. ``/invoices/{id}`` → ``invoice``)."""
        body = self.get_json(api, path, params)
        record = body.get(get_key)
        if not isinstance(record, dict):
            raise ZohoBadResponse(f"the answer has no record {get_key!r}", path=path, record_id=_record_id(path))
        return record

    def item_details(self, ids: Iterable[str], chunk_size: int = ITEM_DETAILS_CHUNK) -> Iterator[dict]:
        """Full item records for `ids` through Books ``/itemdetails?item_ids=``, `chunk_size` ids a call."""
        unique = list(dict.fromkeys(str(i) for i in ids if i not in (None, "")))
        for start in range(0, len(unique), chunk_size):
            chunk = unique[start : start + chunk_size]
            body = self.get_json("books", "/itemdetails", {"item_ids": ",".join(chunk)})
            items = body.get("items")
            if not isinstance(items, list):
                raise ZohoBadResponse("the answer has no list 'items'", path="/itemdetails")
            yield from (item for item in items if isinstance(item, dict))

    def count(
        self,
        api: Api,
        path: str,
        list_key: str,
        params: Mapping[str, Any] | None = None,
        *,
        id_field: str | None = None,
    ) -> int:
        """How many records a listing holds: one call with ``response_option=2`` (page_context.total),
        else by paging through the listing (ceil(N/200) calls)."""
        body = self.get_json(api, path, {**(params or {}), "response_option": 2})
        context = body.get("page_context")
        total = _int(context.get("total")) if isinstance(context, dict) else None
        if total is not None:
            return total
        log.info("no page_context.total for %s; counting by paging", path)
        return sum(len(page.records) for page in self.list_pages(api, path, list_key, params, id_field=id_field))


class _TokenRefused(Exception):
    """401 code 57 on a token not yet refreshed in this call."""


_TRANSIENT_HINT = "Zoho or the network failed repeatedly; the run can be retried later"


def _dedupe(records: list, id_field: str | None, seen: set[tuple[str, str]]) -> tuple[list, int]:
    """The entries of one page to yield, and how many were dropped as duplicates.

    A record whose `id_field` value and content (compared as canonical JSON) equal those of a copy already
    yielded in this listing (`seen`, updated here) is dropped: it adds nothing. A copy with the same id but
    other content is yielded again, since it may be newer (the sync engine keeps the newest by version).
    Entries that are not JSON objects, and records without an id, are passed through untouched: the engine
    keeps them as dead letters with a reason instead of losing them silently."""
    kept: list = []
    dropped = 0
    for record in records:
        record_id = record.get(id_field) if id_field and isinstance(record, dict) else None
        if record_id not in (None, ""):
            # A digest, not the record: a long listing keeps 64 bytes per copy in memory.
            canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
            key = (str(record_id), hashlib.sha256(canonical.encode()).hexdigest())
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        kept.append(record)
    return kept, dropped


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """The seconds a Retry-After header asks to wait: delta-seconds or an HTTP-date (a past date means 0);
    None when absent or unreadable."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" dates come back naive; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _record_id(path: str) -> str | None:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last.isdigit() else None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None
