"""A failed `tds` command in one line: what went wrong and which setting to check, never a secret."""

from __future__ import annotations

import os
import re

from sqlalchemy.exc import DBAPIError, OperationalError

from tds_pipelines import settings
from tds_pipelines.zoho.credentials import scrub
from tds_pipelines.zoho.errors import ZohoAuthError, ZohoError, ZohoPermissionError, ZohoRefreshThrottled

CREDENTIAL_SETTINGS = "ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN, ZOHO_ORGANIZATION_ID"
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_MISSING_TABLE = re.compile(r"no such table|relation \S+ does not exist")  # SQLite's, PostgreSQL's words


def masked_url(text: str) -> str:
    """`text` with the password of every URL in it (``scheme://user:password@host``) shown as ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def describe(exc: BaseException) -> str:
    """`exc` as one line for a person (without the leading "tds: ")."""
    url = os.environ.get("TDS_DATABASE_URL") or settings.database_url()
    if isinstance(exc, DBAPIError) and _MISSING_TABLE.search(str(exc.orig)):
        line = f"the ERP database {url} lacks TDS tables ({_first_line(exc.orig)}): run `tds db upgrade`"
    elif isinstance(exc, OperationalError):
        line = f"cannot open the ERP database {url} (TDS_DATABASE_URL): {_first_line(exc.orig)}"
    elif isinstance(exc, ZohoError):
        line = str(exc)  # secret-free by construction, and carries the client's hint
        if isinstance(exc, ZohoAuthError | ZohoRefreshThrottled | ZohoPermissionError) and "ZOHO_" not in line:
            line += f" (check {CREDENTIAL_SETTINGS})"
    elif isinstance(exc, ValueError):
        line = str(exc)  # configuration errors name the variable to fix
    else:
        line = f"{type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)"
    # Any message may quote a URL or echo a setting: keep the database password and Zoho secrets out.
    secrets = [os.environ.get(name, "") for name in ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN")]
    return scrub(masked_url(" ".join(line.split())), secrets)


def _first_line(exc: BaseException | None) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
