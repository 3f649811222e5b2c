"""The `tds` command from a shell, on the embedded default (SQLite) and on PostgreSQL."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from tds_pipelines.erp.tables import alerts
from tds_pipelines.simulator.config import client_environment
from tds_pipelines_tests.sync_fixtures import count_rows, fresh_erp, simulator

TDS = [sys.executable, "-m", "tds_pipelines.cli"]


def tds(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TDS, *args],
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
    synced_entities = {name for name, state in report["entities"].items() if state["last_full_sync_at"]}
    assert synced_entities == {"customers", "invoices"} and "item_stock" in report["entities"]
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


def assert_one_line_failure(done: subprocess.CompletedProcess, starts: str) -> None:
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.splitlines()) <= 2 and done.stderr.startswith(starts), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["status"], ["sync", "--entity", "users"], ["db", "upgrade"]])
def test_missing_database_is_one_line_without_the_password(command):
    url = "postgresql://postgres:pw-never-shown@127.0.0.1:5432/does_not_exist_x"
    env = client_environment("http://127.0.0.1:9") | {"TDS_DATABASE_URL": url}
    done = tds(*command, env=env)
    masked = "postgresql://postgres:***@127.0.0.1:5432/does_not_exist_x"
    assert_one_line_failure(done, f"tds: cannot open the ERP database {masked} (TDS_DATABASE_URL): ")
    assert "pw-never-shown" not in done.stdout + done.stderr
    debug = tds("--debug", *command, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "OperationalError" in debug.stderr


def test_wrong_client_secret_is_one_line_naming_the_settings(sim, tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    fresh_erp(url)
    env = client_environment(sim.url) | {"ZOHO_CLIENT_SECRET": "secret-never-shown", "TDS_DATABASE_URL": url}
    done = tds("sync", "--entity", "users", env=env)
    assert_one_line_failure(done, "tds: Zoho Accounts refused the token refresh (invalid_client_secret)")
    assert "ZOHO_CLIENT_SECRET" in done.stderr
    assert "secret-never-shown" not in done.stdout + done.stderr
    debug = tds("--debug", "sync", "--entity", "users", env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ZohoAuthError" in debug.stderr


def test_status_piped_to_head_ends_quietly(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    engine, _, _ = fresh_erp(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:  # a report far larger than a pipe holds, so `head` leaves before it is written
        conn.execute(
            alerts.insert(),
            [
                {"incident": f"i{i:05}", "kind": "check_failed", "severity": "WARN", "message": "m", "created_at": now}
                for i in range(5000)
            ],
        )
    done = subprocess.run(
        ["bash", "-c", f"{shlex.join([*TDS, 'status', '--json'])} | head -1; exit ${{PIPESTATUS[0]}}"],
        env=dict(os.environ) | {"TDS_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "{\n", "")


def test_sync_goes_on_after_an_entity_fails(sim, tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    _, observer, _ = fresh_erp(url)
    # A reliable failure of invoices alone (a Zoho 5xx is retried for minutes before it fails).
    with observer.begin() as conn:
        conn.execute(text("DROP TABLE zoho_invoices"))
    env = client_environment(sim.url) | {"TDS_DATABASE_URL": url, "TDS_ZOHO_CALLS_PER_MINUTE": "100000"}
    done = tds("sync", "--full", "--entity", "customers", "--entity", "invoices", "--entity", "users", env=env)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "2 of 3 entities synced; failed: invoices"
    assert (
        f"tds: invoices failed: the ERP database {url} lacks TDS tables (no such table: zoho_invoices)" in done.stderr
    )
    assert count_rows(observer, "zoho_customers") == count_rows(observer, "zoho_users") == 20


def test_sync_calls_count_as_other_and_skips_are_reported(sim, tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    _, observer, _ = fresh_erp(url)
    env = client_environment(sim.url) | {
        "TDS_DATABASE_URL": url,
        "TDS_ZOHO_DAILY_LIMIT": "1000",
        # Nothing left for "other" today; the scheduled jobs still have theirs.
        "TDS_ZOHO_API_SHARES": json.dumps({"other": 0, "full_sync": 0.5, "incremental_sync": 0.5}),
    }
    done = tds("sync", "--entity", "customers", "--entity", "users", env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "0 of 2 entities synced; skipped: customers, users"
    assert "skipped: job 'other' has used 0 of its 0 API calls today" in done.stdout
    assert count_rows(observer, "zoho_customers") == count_rows(observer, "zoho_users") == 0


def test_sync_of_a_set_the_full_sync_listed_recently_is_no_failure(sim, tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    fresh_erp(url)
    env = client_environment(sim.url) | {"TDS_DATABASE_URL": url, "TDS_ZOHO_CALLS_PER_MINUTE": "100000"}
    assert tds("sync", "--full", "--entity", "users", env=env).returncode == 0
    again = tds("sync", "--entity", "users", env=env)
    assert again.returncode == 0, again.stdout
    assert "skipped: listed whole by the full sync" in again.stdout
    assert again.stdout.splitlines()[-1] == "1 of 1 entities synced"


def test_dlq_import_list_and_replay_apply_the_old_services_stranded_deliveries(pg_server_url, tmp_path):
    _, observer, schema = fresh_erp(pg_server_url)
    env = {"TDS_DATABASE_URL": pg_server_url, "TDS_DB_SCHEMA": schema}
    invoice = {
        "invoice_id": "77001",
        "invoice_number": "INV-OLD-1",
        "date": "2025-12-01",
        "total": 12.5,
        "line_items": [],
    }
    contact = {"contact_id": "77002", "contact_name": "Old Vendor", "contact_type": "vendor"}
    export = tmp_path / "stranded.jsonl"
    export.write_text(
        "\n".join([json.dumps({"invoice": invoice}), json.dumps({"contact": contact}), "not json at all"]) + "\n"
    )
    imported = tds("dlq", "import", str(export), env=env)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 deliveries" in imported.stdout and "1 unusable" in imported.stdout
    again = tds("dlq", "import", str(export), env=env)
    assert "imported 0 deliveries" in again.stdout  # idempotent: a second import stores nothing new
    listed = tds("dlq", "list", env=env)
    assert "3 dead letter(s) shown" in listed.stdout and "77001" in listed.stdout
    replayed = tds("dlq", "replay", "--all", "--now", env=env)
    assert replayed.returncode == 0, replayed.stderr
    assert count_rows(observer, "zoho_invoices", "WHERE zoho_id = '77001'") == 1
    assert count_rows(observer, "zoho_vendors", "WHERE zoho_id = '77002'") == 1
    queue = json.loads(tds("status", "--json", env=env).stdout)["queue"]
    assert queue.get("FAILED") == 1 and not queue.get("DEAD_LETTER")  # the unusable line: retried, then dead
