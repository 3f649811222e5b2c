"""Zoho data centers: which accounts host issues tokens and which API host serves Books and Inventory."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DataCenter:
    """The two hosts of one Zoho data center (scheme included, no trailing slash)."""

    name: str
    accounts_url: str
    api_url: str


DATA_CENTERS: dict[str, DataCenter] = {
    dc.name: dc
    for dc in (
        DataCenter("com", "https://accounts.zoho.com", "https://www.zohoapis.com"),
        DataCenter("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
        DataCenter("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
        DataCenter("com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
        DataCenter("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
        # Canada is the odd one: its accounts host is zohocloud.ca, not zoho.ca.
        DataCenter("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
        DataCenter("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
        DataCenter("com.cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    )
}
DEFAULT_DATA_CENTER = "com"


def data_center(name: str | None = None) -> DataCenter:
    """The data center called `name` (default: env ZOHO_DATA_CENTER, else ``com``); refuses unknown names."""
    key = (name or os.environ.get("ZOHO_DATA_CENTER") or DEFAULT_DATA_CENTER).strip().lower().lstrip(".")
    try:
        return DATA_CENTERS[key]
    except KeyError:
        known = ", ".join(DATA_CENTERS)
        raise ValueError(f"unknown Zoho data center {key!r}: ZOHO_DATA_CENTER must be one of {known}") from None


def accounts_url(name: str | None = None, override: str | None = None) -> str:
    """The accounts (OAuth) base URL: `override`, else env ZOHO_ACCOUNTS_URL, else the data center's host."""
    url = override or os.environ.get("ZOHO_ACCOUNTS_URL") or data_center(name).accounts_url
    return url.rstrip("/")


def api_url(name: str | None = None, override: str | None = None, api_domain: str | None = None) -> str:
    """The API base URL: `override` or env ZOHO_API_URL first, then the token answer's `api_domain`, then the
    data center's host."""
    url = override or os.environ.get("ZOHO_API_URL") or api_domain or data_center(name).api_url
    return url.rstrip("/")
