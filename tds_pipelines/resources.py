"""Dagster resources: the ERP database and the Zoho client. Secrets arrive through EnvVar, never as text."""

from __future__ import annotations

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine

from tds_pipelines.erp.db import make_engine
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.credentials import ZohoCredentials


class ErpDatabase(dg.ConfigurableResource):
    """The ERP store. Without a URL: TDS_DATABASE_URL, else the embedded SQLite file."""

    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the ERP database")
    db_schema: str | None = Field(default=None, description="PostgreSQL schema of TDS tables (TDS_DB_SCHEMA)")

    def engine(self) -> Engine:
        return make_engine(self.database_url, self.db_schema)


class ZohoApi(dg.ConfigurableResource):
    """Zoho Books/Inventory through the shared token cache and the shared rate budget."""

    client_id: str
    client_secret: str
    refresh_token: str
    organization_id: str
    data_center: str = "com"
    accounts_url: str | None = None
    api_url: str | None = None
    calls_per_minute: int = Field(default=100, description="Zoho's per-minute limit, shared by every run")
    daily_limit: int | None = Field(default=None, description="The plan's daily quota; None: as Zoho reports")
    api_shares: dict[str, float] | None = Field(
        default=None,
        description="Fraction of the daily quota reserved per job (a floor: a job may borrow what others leave "
        "unused today); None: the built-in shares",
    )

    def client(self, engine: Engine, job: str) -> ZohoClient:
        credentials = ZohoCredentials(
            client_id=self.client_id,
            client_secret=self.client_secret,
            refresh_token=self.refresh_token,
            organization_id=self.organization_id,
            data_center=self.data_center,
            accounts_url=self.accounts_url,
            api_url=self.api_url,
        )
        return ZohoClient(
            credentials,
            engine,
            job=job,
            per_minute=self.calls_per_minute,
            daily_limit=self.daily_limit,
            shares=self.api_shares,
        )
