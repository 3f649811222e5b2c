"""OAuth self-client credentials. Their repr and str never show the secrets."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tds_pipelines.zoho import datacenters

REDACTED = "***"


@dataclass(frozen=True)
class ZohoCredentials:
    """Client id, client secret and refresh token of a Zoho self client, the organization every call names,
    and the hosts (`accounts_url`/`api_url` override the data center's; None means "from the data center",
    and for the API host "from the token answer's api_domain first")."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    organization_id: str
    data_center: str = datacenters.DEFAULT_DATA_CENTER
    accounts_url: str | None = None
    api_url: str | None = None

    def __post_init__(self) -> None:
        datacenters.data_center(self.data_center)  # refuse an unknown data center early

    def __repr__(self) -> str:
        return (
            f"ZohoCredentials(client_id={self.client_id!r}, client_secret={REDACTED!r}, "
            f"refresh_token={REDACTED!r}, organization_id={self.organization_id!r}, "
            f"data_center={self.data_center!r}, accounts_url={self.accounts_url!r}, api_url={self.api_url!r})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ZohoCredentials:
        """Credentials from ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN, ZOHO_ORGANIZATION_ID,
        ZOHO_DATA_CENTER, ZOHO_ACCOUNTS_URL and ZOHO_API_URL; names the missing variables (never values)."""
        env = os.environ if environ is None else environ
        required = ("ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "ZOHO_ORGANIZATION_ID")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ValueError(f"Zoho credentials incomplete: set {', '.join(missing)}")
        return cls(
            client_id=env["ZOHO_CLIENT_ID"],
            client_secret=env["ZOHO_CLIENT_SECRET"],
            refresh_token=env["ZOHO_REFRESH_TOKEN"],
            organization_id=env["ZOHO_ORGANIZATION_ID"],
            data_center=env.get("ZOHO_DATA_CENTER") or datacenters.DEFAULT_DATA_CENTER,
            accounts_url=env.get("ZOHO_ACCOUNTS_URL") or None,
            api_url=env.get("ZOHO_API_URL") or None,
        )

    @property
    def token_url(self) -> str:
        """Where access tokens are refreshed."""
        base = (self.accounts_url or datacenters.data_center(self.data_center).accounts_url).rstrip("/")
        return f"{base}/oauth/v2/token"

    def api_base(self, api_domain: str | None = None) -> str:
        """The API host to call: the `api_url` override, else the token's `api_domain`, else the data
        center's."""
        url = self.api_url or api_domain or datacenters.data_center(self.data_center).api_url
        return url.rstrip("/")

    @property
    def cache_key(self) -> str:
        """sha256 of accounts host + client id + refresh token + client secret: names the shared token without
        holding a secret. The secret is part of it so that a token cached for other credentials is never
        handed out: changed (or wrong) credentials refresh on their next call and Zoho judges them at once."""
        host = urlsplit(self.token_url).netloc.lower()
        parts = (host, self.client_id, self.refresh_token, self.client_secret)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def secrets(self) -> tuple[str, ...]:
        """The values that must never be shown (used by `scrub`)."""
        return tuple(s for s in (self.client_secret, self.refresh_token) if s)


_SECRET_PARAMS = re.compile(
    r"(?i)((?:client_secret|refresh_token|access_token|authorization)[\"']?\s*[=:]\s*[\"']?"
    r"(?:Zoho-oauthtoken\s+)?)[^&\s\"',}]+"
)


def scrub(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """`text` with every known secret and every secret-named parameter (``client_secret=...``,
    ``"access_token": "..."``, ``Authorization: Zoho-oauthtoken ...``) replaced by ***."""
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SECRET_PARAMS.sub(lambda m: m.group(1) + REDACTED, text)
