"""The `tds` command from a shell, on the embedded default (SQLite) and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tds_pipelines.simulator.config import client_environment
from tds_pipelines_tests.sync_fixtures import count_rows, fresh_erp, simulator


def tds(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tds_pipelines.cli", *args],
        env=dict(os.environ) | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sim():
    with simulator(records=20) as running:
        yield running


def test_upgrade_sync_and_status_on_sqlite(sim, tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    env = client_environment(sim.url) | {"TDS_DATABASE_URL": url, "TDS_ZOHO_CALLS_PER_MINUTE": "100000"}
    assert tds("db", "upgrade", env=env).returncode == 0
    synced = tds("sync", "--full", "--entity", "customers", "--entity", "invoices", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "customers (full): fetched" in synced.stdout and "invoices (full): fetched" in synced.stdout
    status = tds("status", "--json", env=env)
    report = json.loads(status.stdout)
    assert set(report["entities"]) == {"customers", "invoices"}
    assert report["entities"]["invoices"]["last_full_sync_at"] is not None
    _, observer, _ = fresh_erp(url)
    assert count_rows(observer, "zoho_invoices") == 20
    assert "sim-secret" not in synced.stdout + synced.stderr + status.stdout


def test_sync_incremental_on_postgres(sim, pg_server_url):
    _, observer, schema = fresh_erp(pg_server_url)
    env = client_environment(sim.url) | {
        "TDS_DATABASE_URL": pg_server_url,
        "TDS_DB_SCHEMA": schema,
        "TDS_ZOHO_CALLS_PER_MINUTE": "100000",
    }
    first = tds("sync", "--entity", "bills", "--entity", "item_stock", env=env)
    assert first.returncode == 0, first.stderr
    assert count_rows(observer, "zoho_bills") == 20 and count_rows(observer, "zoho_item_stock") > 0
    again = tds("sync", "--entity", "bills", env=env)
    assert "inserted 0, updated 0" in again.stdout


def test_missing_credentials_name_the_variables(tmp_path):
    env = {name: "" for name in client_environment("http://127.0.0.1:9")}
    done = tds("sync", "--entity", "users", env=env | {"TDS_DATABASE_URL": f"sqlite:///{tmp_path / 'erp.sqlite'}"})
    assert done.returncode != 0
    assert "ZOHO_CLIENT_SECRET" in done.stderr and "ZOHO_REFRESH_TOKEN" in done.stderr
