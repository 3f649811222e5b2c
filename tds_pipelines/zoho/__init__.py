"""Zoho Books / Inventory client: the shared OAuth token cache, the shared rate budget, paging and errors.

Entry point: `ZohoClient(credentials, engine, job=...)` (or `ZohoClient.from_env(...)`); see zoho-api.md for
the facts it is built on.
"""

from tds_pipelines.zoho.client import Page, ZohoClient
from tds_pipelines.zoho.credentials import ZohoCredentials
from tds_pipelines.zoho.errors import (
    BudgetShareExceeded,
    ZohoAuthError,
    ZohoBadResponse,
    ZohoError,
    ZohoNotFound,
    ZohoPermissionError,
    ZohoQuotaExhausted,
    ZohoRateLimited,
    ZohoRefreshThrottled,
)

__all__ = [
    "BudgetShareExceeded",
    "Page",
    "ZohoAuthError",
    "ZohoBadResponse",
    "ZohoClient",
    "ZohoCredentials",
    "ZohoError",
    "ZohoNotFound",
    "ZohoPermissionError",
    "ZohoQuotaExhausted",
    "ZohoRateLimited",
    "ZohoRefreshThrottled",
]
