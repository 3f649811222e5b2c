"""End to end: a real `dagster dev` (webserver + daemon), the webhook receiver and the simulator as processes:
full_sync launched through the daemon, a change made in Zoho reaching the ERP by itself, and a schedule firing
by itself with its checks' results visible through Dagster's GraphQL API and its alert posted once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import select

from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.tables import entity_tables, sync_queue
from tds_pipelines_tests.capture import capture_server
from tds_pipelines_tests.sync_fixtures import admin, free_port, fresh_erp, row_count, simulator, zoho_env

REPO = Path(__file__).resolve().parents[1]
DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
RUNS = "{ runsOrError { ... on Runs { results { jobName status } } } }"
WEBHOOK_TOKEN = "e2e-webhook-token"
SCHEDULED_RUNS = """{ runsOrError(filter: {tags: [{key: "dagster/schedule_name", value: "%s"}]})
  { ... on Runs { results { runId status } } } }"""
QUEUE_CHECKS = """{ assetNodes(assetKeys: [{path: ["tds", "webhook_queue"]}]) { assetChecksOrError { ... on AssetChecks
  { checks { name executionForLatestMaterialization { runId status evaluation { success severity } } } } } } }"""
# auto_heal every minute instead of every 15, so that the test sees it fire by itself.
CRONS = '{"auto_heal_every_15_minutes": "* * * * *"}'
SCHEDULES = """{ schedulesOrError(repositorySelector: {repositoryLocationName: "%s", repositoryName: "__repository__"})
  { ... on Schedules { results { name scheduleState { status } } } } }"""


def graphql(port: int, query: str, **variables) -> dict:
    """The data of a GraphQL answer. An error answer (the webserver lost its database a moment ago) raises as
    a failed request would, so that `wait_until` asks again."""
    response = requests.post(
        f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables}, timeout=30
    )
    data = (response.json().get("data") if response.status_code == 200 else None) or {}
    if not data or any(isinstance(v, dict) and v.get("__typename") == "PythonError" for v in data.values()):
        raise requests.RequestException(f"GraphQL answered {response.status_code}: {response.text[:2000]}")
    return data


def wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {seconds:.0f}s waiting for {what}")


def run_job(port: int, job: str) -> str:
    """Launch `job` through the webserver and wait for its end; returns the final status."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(job)
    return wait_until(
        lambda: (s := client.get_run_status(run_id).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        300,
        f"the {job} run (queued, dequeued by the daemon, executed)",
    )


@contextmanager
def process_group(command: list[str], env: dict[str, str]):
    """A child process in its own session, interrupted (then killed) with all of its children at the end."""
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):  # a crash test may have killed it already
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def dagster_dev(pg_server_url, tmp_path):
    """`dagster dev` on a free port with its own SQLite instance, the webhook receiver, a simulator that
    delivers its changes to the receiver, and a server capturing the alerts, all on a fresh ERP; auto_heal
    fires every minute. Yields (port, erp, simulator, capture)."""
    erp = fresh_erp(pg_server_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    port, receiver_port = free_port(), free_port()
    receiver_url = f"http://127.0.0.1:{receiver_port}"
    base_env = dict(os.environ) | {"TDS_DATABASE_URL": pg_server_url, "TDS_DB_SCHEMA": erp.schema}
    base_env |= {"TDS_WEBHOOK_TOKEN": WEBHOOK_TOKEN}
    tds = [sys.executable, "-m", "tds_pipelines.cli"]
    with process_group([*tds, "webhooks", "--port", str(receiver_port)], base_env) as receiver:
        wait_until(
            lambda: receiver.poll() is None and requests.get(f"{receiver_url}/health", timeout=2).ok, 60, "the receiver"
        )
        webhooks = {"webhook_url": f"{receiver_url}/webhooks/zoho", "webhook_token": WEBHOOK_TOKEN}
        with simulator(records=12, **webhooks) as sim, capture_server(path="/alerts/T0/B0/secret") as capture:
            env = base_env | zoho_env(sim, pg_server_url, erp.schema) | {"DAGSTER_HOME": str(home)}
            env |= {"TDS_SCHEDULE_CRONS": CRONS, "TDS_ALERT_WEBHOOK_URL": capture.url}
            command = [sys.executable, "-m", "dagster", "dev", "-m", "tds_pipelines.definitions", "-p", str(port)]
            with process_group(command, env):
                wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok, 120, "webserver")
                yield port, erp, sim, capture


def test_dagster_dev_runs_full_sync_through_the_daemon_and_applies_webhooks_by_itself(dagster_dev):
    port, erp, sim, _ = dagster_dev
    [location] = [e["name"] for e in graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]]
    schedules = graphql(port, SCHEDULES % location)["schedulesOrError"]["results"]
    assert {s["name"]: s["scheduleState"]["status"] for s in schedules} == {
        "daily_full_sync": "RUNNING",
        "hourly_incremental_sync": "RUNNING",
        "stock_sync_every_15_minutes": "RUNNING",
        "auto_heal_every_15_minutes": "RUNNING",
        "daily_statistics_comparison": "RUNNING",
        "daily_run_history_purge": "RUNNING",
    }

    def daemons_healthy():
        statuses = graphql(port, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = {s["daemonType"]: s["healthy"] for s in statuses if s["required"]}
        return all(required.values()) and {"SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= set(required)

    wait_until(daemons_healthy, 120, "the daemon's heartbeats")
    assert run_job(port, "full_sync") == "SUCCESS"
    for spec in ENTITIES:
        assert row_count(erp.observer, entity_tables[spec.name]) > 0, spec.name

    # A Zoho user edits an invoice: the workflow rule's webhook, the receiver, the queue sensor and
    # process_webhook_queue bring the edit to the ERP with no run launched by anyone.
    invoice_id = sorted(admin(sim, "GET", "invoices")["ids"])[0]
    admin(sim, "PATCH", f"invoices/{invoice_id}", {"reference_number": "edited in Zoho"})
    invoices = entity_tables["invoices"]

    def edited():
        with erp.observer.connect() as conn:
            query = select(invoices.c.raw).where(invoices.c.zoho_id == invoice_id)
            return conn.execute(query).scalar_one()["reference_number"] == "edited in Zoho"

    wait_until(edited, 180, "the webhook's edit in the ERP")
    runs = graphql(port, RUNS)["runsOrError"]["results"]  # launched by the sensor (it may still linger)
    assert any(r["jobName"] == "process_webhook_queue" and r["status"] not in ("FAILURE", "CANCELED") for r in runs)


def test_a_schedule_fires_by_itself_its_checks_show_in_graphql_and_its_alert_is_posted_once(dagster_dev):
    port, erp, _, capture = dagster_dev
    with erp.engine.begin() as conn:  # a dead letter an operator has not seen yet (too young to be retried)
        conn.execute(
            sync_queue.insert().values(
                status="DEAD_LETTER", event="webhook", entity="products", zoho_id="1", payload={"item_id": "1"},
                attempts=5, last_error="poison", received_at=datetime.now(UTC), body_hash="e2e-dead-letter",
            )
        )  # fmt: skip

    def scheduled_successes() -> list[str]:
        runs = graphql(port, SCHEDULED_RUNS % "auto_heal_every_15_minutes")["runsOrError"]["results"]
        return [r["runId"] for r in runs if r["status"] == "SUCCESS"]

    first = wait_until(scheduled_successes, 240, "auto_heal launched by its schedule")[0]
    [node] = graphql(port, QUEUE_CHECKS)["assetNodes"]
    checks = {c["name"]: c["executionForLatestMaterialization"] for c in node["assetChecksOrError"]["checks"]}
    assert set(checks) == {"oldest_pending_age", "no_dead_letters", "no_stuck_items", "success_rate_24h"}
    assert checks["no_dead_letters"]["runId"] == first
    assert checks["no_dead_letters"]["evaluation"] == {"success": False, "severity": "WARN"}
    assert checks["no_stuck_items"]["evaluation"]["success"] is True

    alert = wait_until(capture.bodies, 60, "the alert's post")
    # The next tick finds the same incident open: counted, not posted again.
    wait_until(lambda: len(scheduled_successes()) >= 2, 180, "a second scheduled auto_heal")
    assert len(capture.bodies()) == 1
    assert "no_dead_letters" in json.loads(alert[0])["text"]
