"""Building blocks of the sync tests: fresh ERP schemas, simulators, clients wired to them."""

from __future__ import annotations

import socket
import uuid
from contextlib import contextmanager
from typing import NamedTuple

import requests
from sqlalchemy import Engine, create_engine, func, select, text

from tds_pipelines.erp.db import make_engine, normalize_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import client_environment
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.credentials import ZohoCredentials
from tds_pipelines_tests.simulator_fixtures import running_simulator

UNLIMITED = 1_000_000  # calls a minute: the client's budget when the simulator has no limit


class Erp(NamedTuple):
    """A migrated ERP store for one test. `observer` is a separate engine: every assertion on written data
    reads through it, so a write that was never committed is seen as missing."""

    engine: Engine
    observer: Engine
    schema: str | None


def fresh_erp(url: str) -> Erp:
    """A new TDS schema (PostgreSQL URL) or file (SQLite URL), migrated."""
    if url.startswith("sqlite"):
        upgrade(url)
        return Erp(make_engine(url), create_engine(url), None)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    upgrade(url, schema)
    observer = create_engine(normalize_url(url), connect_args={"options": f"-csearch_path={schema}"})
    return Erp(make_engine(url, schema), observer, schema)


@contextmanager
def simulator(**overrides):
    """A simulator on a free port; unlimited rate unless a test sets limits."""
    with running_simulator(**{"rate_limit_per_minute": 0, "daily_limit": 0, "records": 30, **overrides}) as sim:
        yield sim


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client_for(sim, engine, job: str = "test", per_minute: int = UNLIMITED, **kwargs) -> ZohoClient:
    credentials = ZohoCredentials.from_env(client_environment(sim.url))
    return ZohoClient(credentials, engine, job=job, per_minute=per_minute, **kwargs)


def admin(sim, method: str, path: str, json=None) -> dict:
    response = requests.request(method, f"{sim.url}/admin/{path}", json=json, timeout=30)
    response.raise_for_status()
    return response.json() if response.content else {}


def zoho_record(sim, entity: str, zoho_id: str) -> dict:
    """The simulator's current record (what Zoho's GET would answer), through its admin route."""
    return admin(sim, "GET", f"{entity}/{zoho_id}")["record"]


def count_rows(observer, table: str, where: str = "") -> int:
    with observer.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


def column_values(observer, table, column, where=None) -> list:
    statement = select(table.c[column])
    if where is not None:
        statement = statement.where(where)
    with observer.connect() as conn:
        return list(conn.execute(statement).scalars())


def row_count(observer, table) -> int:
    with observer.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def zoho_env(sim, database_url: str, schema: str | None = None) -> dict[str, str]:
    env = client_environment(sim.url) | {"TDS_DATABASE_URL": database_url, "TDS_ZOHO_CALLS_PER_MINUTE": "1000000"}
    return env | ({"TDS_DB_SCHEMA": schema} if schema else {})


def use_env(monkeypatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
