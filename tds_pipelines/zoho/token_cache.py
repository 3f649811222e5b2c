"""The OAuth access token, cached in the database and shared by every process.

Zoho allows 10 refreshes per 10 minutes per refresh token and every Dagster run is a new process, so the
token lives in ``tds_oauth_tokens`` (keyed by a hash of the whole credentials, never a secret). A process
that needs a new token locks the row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), checks again, refreshes and commits; the processes that waited on the lock then read the fresh
token. So any number of processes cause at most one refresh per token lifetime.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import requests
from sqlalchemy import Engine, select, update

from tds_pipelines.erp.db import as_utc, insert_ignore, utcnow, write_transaction
from tds_pipelines.erp.tables import oauth_tokens
from tds_pipelines.zoho.credentials import ZohoCredentials, scrub
from tds_pipelines.zoho.errors import ZohoAuthError, ZohoBadResponse, ZohoError, ZohoRefreshThrottled

log = logging.getLogger(__name__)

_AUTH_ERRORS = {
    "invalid_code": "the refresh token is invalid or revoked",
    "invalid_client": "the client id is unknown",
    "invalid_client_secret": "the client secret is wrong",
}
_AUTH_HINT = (
    "check ZOHO_REFRESH_TOKEN, ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET, and that ZOHO_DATA_CENTER names the "
    "data center the self client was created in; generate a new refresh token if it was revoked"
)


@dataclass(frozen=True)
class AccessToken:
    """A usable access token and the API host Zoho named with it."""

    token: str = field(repr=False)
    api_domain: str | None
    expires_at: datetime
    refresh_after: datetime  # refreshed a little before it expires

    def __repr__(self) -> str:
        return f"AccessToken(token='***', api_domain={self.api_domain!r}, expires_at={self.expires_at!r})"


class TokenCache:
    """Hands out the shared access token of `credentials`, refreshing it (once, for all processes) shortly
    before it expires or after `invalidate`."""

    def __init__(
        self,
        credentials: ZohoCredentials,
        engine: Engine,
        session: requests.Session | None = None,
        *,
        margin_seconds: float = 300,
        throttle_block_seconds: float = 900,
        timeout: float = 30,
        attempts: int = 3,
    ) -> None:
        self.credentials = credentials
        self.engine = engine
        self.session = session or requests.Session()
        self.margin_seconds = margin_seconds
        self.throttle_block_seconds = throttle_block_seconds
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.key = credentials.cache_key
        self.refreshes = 0  # refreshes this instance made itself
        self._held: AccessToken | None = None

    def get(self) -> AccessToken:
        """A token valid for a while yet: the cached one, else a fresh one (refreshed under the row lock).

        Raises ZohoRefreshThrottled while a refresh throttle block holds, ZohoAuthError for bad
        credentials."""
        # The token this process last saw stays good until its refresh margin: no database read per call.
        if self._held is not None and self._held.refresh_after > utcnow():
            return self._held
        with self.engine.connect() as conn:
            row = conn.execute(select(oauth_tokens).where(oauth_tokens.c.cache_key == self.key)).first()
        token = self._usable(row)
        if token:
            self._held = token
            return token
        self._raise_if_blocked(row)

        throttled: ZohoRefreshThrottled | None = None
        with write_transaction(self.engine) as conn:
            insert_ignore(conn, oauth_tokens, {"cache_key": self.key, "refresh_count": 0})
            row = conn.execute(select(oauth_tokens).where(oauth_tokens.c.cache_key == self.key).with_for_update()).one()
            token = self._usable(row)  # another process may have refreshed while we waited for the lock
            if token:
                return token
            self._raise_if_blocked(row)
            try:
                token = self._refresh()
            except ZohoRefreshThrottled as exc:
                throttled = exc
                conn.execute(
                    update(oauth_tokens)
                    .where(oauth_tokens.c.cache_key == self.key)
                    .values(blocked_until=exc.blocked_until)
                )
            else:
                conn.execute(
                    update(oauth_tokens)
                    .where(oauth_tokens.c.cache_key == self.key)
                    .values(
                        access_token=token.token,
                        api_domain=token.api_domain,
                        expires_at=token.expires_at,
                        refreshed_at=utcnow(),
                        refresh_count=oauth_tokens.c.refresh_count + 1,
                        blocked_until=None,
                    )
                )
        if throttled is not None:
            raise throttled
        self._held = token
        return token

    def invalidate(self, token: str) -> bool:
        """Forget `token` after Zoho refused it (401 code 57), unless the cache already holds a newer one:
        N processes refused at once cause one refresh. True when this call cleared it."""
        self._held = None
        with self.engine.begin() as conn:
            result = conn.execute(
                update(oauth_tokens)
                .where(oauth_tokens.c.cache_key == self.key, oauth_tokens.c.access_token == token)
                .values(access_token=None, expires_at=None)
            )
        return bool(result.rowcount)

    def _usable(self, row) -> AccessToken | None:
        if row is None or not row.access_token or row.expires_at is None:
            return None
        expires_at = as_utc(row.expires_at)
        refreshed_at = as_utc(row.refreshed_at)
        lifetime = (expires_at - refreshed_at).total_seconds() if refreshed_at is not None else None
        refresh_after = self._refresh_after(expires_at, lifetime)
        if utcnow() >= refresh_after:
            return None
        return AccessToken(row.access_token, row.api_domain, expires_at, refresh_after)

    def _refresh_after(self, expires_at: datetime, lifetime_seconds: float | None) -> datetime:
        """Refresh a little early, but never more than a tenth of the lifetime early (short-lived test tokens)."""
        margin = self.margin_seconds if lifetime_seconds is None else min(self.margin_seconds, lifetime_seconds / 10)
        return expires_at - timedelta(seconds=margin)

    def _raise_if_blocked(self, row) -> None:
        blocked_until = as_utc(row.blocked_until) if row is not None else None
        if blocked_until and blocked_until > utcnow():
            raise ZohoRefreshThrottled(
                "Zoho Accounts throttled token refreshes for this refresh token (Access Denied)",
                blocked_until=blocked_until,
                path="/oauth/v2/token",
            )

    def _refresh(self) -> AccessToken:
        creds = self.credentials
        form = {
            "grant_type": "refresh_token",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "refresh_token": creds.refresh_token,
        }
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self.session.post(creds.token_url, data=form, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if attempt == self.attempts:
                    raise ZohoError(
                        f"token refresh failed: {type(exc).__name__}",
                        path="/oauth/v2/token",
                        hint=f"is {creds.token_url} reachable?",
                    ) from None
            else:
                if resp.status_code < 500 or attempt == self.attempts:
                    break
            time.sleep(min(8.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0))
        body = _json_or_none(resp)
        if not isinstance(body, dict):
            raise ZohoBadResponse(
                "token refresh answer is not a JSON object", path="/oauth/v2/token", status=resp.status_code
            )
        error = body.get("error")
        if error:
            self._raise_refresh_error(str(error), body, resp.status_code)
        access_token = body.get("access_token")
        if resp.status_code >= 400 or not access_token:
            raise ZohoBadResponse(
                "token refresh answer carries no access_token",
                path="/oauth/v2/token",
                status=resp.status_code,
            )
        expires_in = _seconds(body.get("expires_in_sec") or body.get("expires_in"))
        self.refreshes += 1
        expires_at = utcnow() + timedelta(seconds=expires_in)
        log.info("refreshed the Zoho access token of client %s (valid %.0f s)", creds.client_id, expires_in)
        return AccessToken(
            str(access_token), body.get("api_domain") or None, expires_at, self._refresh_after(expires_at, expires_in)
        )

    def _raise_refresh_error(self, error: str, body: dict, status: int) -> None:
        path = "/oauth/v2/token"
        if "access denied" in error.lower():
            blocked_until = utcnow() + timedelta(seconds=self.throttle_block_seconds)
            log.warning("Zoho refresh throttle hit; no refresh before %s", blocked_until.isoformat())
            raise ZohoRefreshThrottled(
                "Zoho Accounts refused the token refresh: too many refreshes (Access Denied)",
                blocked_until=blocked_until,
                path=path,
                status=status,
            )
        detail = _AUTH_ERRORS.get(error)
        if detail is None:
            description = scrub(str(body.get("error_description") or ""), self.credentials.secrets())
            detail = scrub(error, self.credentials.secrets()) + (f": {description}" if description else "")
        label = error if error in _AUTH_ERRORS else "error"
        raise ZohoAuthError(
            f"Zoho Accounts refused the token refresh ({label}): {detail}",
            path=path,
            status=status,
            hint=_AUTH_HINT,
        )


def _json_or_none(resp: requests.Response):
    try:
        return resp.json()
    except ValueError:
        return None


def _seconds(value) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 3600.0
    # Older Zoho answers gave expires_in in milliseconds.
    return seconds / 1000 if seconds > 86_400 else max(seconds, 1.0)
