"""End to end: a real `dagster dev` (webserver + daemon) launches full_sync against the simulator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines_tests.sync_fixtures import free_port, fresh_erp, row_count, simulator
from tds_pipelines_tests.test_definitions import zoho_env

REPO = Path(__file__).resolve().parents[1]
DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
SCHEDULES = """{ schedulesOrError(repositorySelector: {repositoryLocationName: "%s", repositoryName: "__repository__"})
  { ... on Schedules { results { name scheduleState { status } } } } }"""


def graphql(port: int, query: str) -> dict:
    response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    assert response.status_code == 200, response.text[:2000]
    return response.json()["data"]


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


@pytest.fixture
def dagster_dev(pg_server_url, tmp_path):
    """`dagster dev` on a free port with its own SQLite instance, wired to a simulator and a fresh ERP."""
    erp = fresh_erp(pg_server_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    port = free_port()
    with simulator(records=12) as sim:
        env = dict(os.environ) | zoho_env(sim, pg_server_url, erp.schema) | {"DAGSTER_HOME": str(home)}
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-m", "tds_pipelines.definitions", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok, 120, "webserver")
            yield port, erp
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def test_dagster_dev_runs_full_sync_through_the_daemon(dagster_dev):
    port, erp = dagster_dev
    [location] = [e["name"] for e in graphql(port, LOCATIONS)["workspaceOrError"]["locationEntries"]]
    schedules = graphql(port, SCHEDULES % location)["schedulesOrError"]["results"]
    assert {s["name"]: s["scheduleState"]["status"] for s in schedules} == {
        "daily_full_sync": "RUNNING",
        "hourly_incremental_sync": "RUNNING",
        "stock_sync_every_15_minutes": "RUNNING",
    }

    def daemons_healthy():
        statuses = graphql(port, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = {s["daemonType"]: s["healthy"] for s in statuses if s["required"]}
        return all(required.values()) and {"SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= set(required)

    wait_until(daemons_healthy, 120, "the daemon's heartbeats")
    assert run_job(port, "full_sync") == "SUCCESS"
    for spec in ENTITIES:
        assert row_count(erp.observer, entity_tables[spec.name]) > 0, spec.name
