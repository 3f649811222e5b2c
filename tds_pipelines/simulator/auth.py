"""Zoho Accounts: the refresh-token grant and the access tokens it issues.

New tokens never revoke old ones (as at Zoho): each token lives until its own expiry, or until
`expire_all()` (the admin route that simulates every token expiring at once)."""

from __future__ import annotations

import secrets
import threading
import time

from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.limits import RefreshThrottle

ACCESS_DENIED = {
    "error": "Access Denied",
    "error_description": "You have made too many requests continuously. Please try again after some time.",
    "status": "failure",
}


class TokenIssuer:
    """Checks the self client's credentials, applies the refresh throttle, remembers issued tokens."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.throttle = RefreshThrottle(
            config.refresh_limit, config.refresh_window_seconds, config.refresh_block_seconds
        )
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}  # token -> monotonic expiry
        self.issued = 0
        self.denied = 0

    def refresh(self, form: dict[str, str], api_domain: str) -> tuple[int, dict]:
        """The token endpoint's (HTTP status, JSON body) for a form-encoded request."""
        cfg = self.config
        if form.get("grant_type") != "refresh_token":
            return 200, {"error": "unsupported_grant_type"}
        if form.get("client_id") != cfg.client_id:
            return 200, {"error": "invalid_client"}
        if form.get("client_secret") != cfg.client_secret:
            return 200, {"error": "invalid_client_secret"}
        if form.get("refresh_token") != cfg.refresh_token:
            return 200, {"error": "invalid_code"}
        if not self.throttle.allow(form["refresh_token"]):
            with self._lock:
                self.denied += 1
            return cfg.refresh_denied_status, dict(ACCESS_DENIED)
        return 200, {
            "access_token": self.issue(),
            "expires_in": int(cfg.token_lifetime_seconds),
            "api_domain": api_domain,
            "token_type": "Bearer",
        }

    def issue(self) -> str:
        """A new access token (also handy for tests that need one without spending a refresh)."""
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        now = time.monotonic()
        with self._lock:
            if len(self._expiry) > 10000:
                self._expiry = {t: e for t, e in self._expiry.items() if e > now}
            self._expiry[token] = now + self.config.token_lifetime_seconds
            self.issued += 1
        return token

    def is_valid(self, token: str) -> bool:
        expiry = self._expiry.get(token)
        return expiry is not None and expiry > time.monotonic()

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._expiry)
            self._expiry.clear()
        return count
