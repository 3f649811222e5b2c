"""The deployed shape: each role of `tds roles` (the Procfile) started as its own process, Dagster's instance
in PostgreSQL from the top-level dagster.yaml, the code location served by its own code server: a run
launched through the webserver is dequeued by the daemon, executed through the code server, and its
results are in the ERP and in Dagster's PostgreSQL storage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from tds_pipelines.roles import ROLES, procfile
from tds_pipelines_tests.sync_fixtures import free_port, fresh_erp
from tds_pipelines_tests.test_definitions import dagster_pg_env
from tds_pipelines_tests.test_e2e_dagster_dev import graphql, process_group, run_job, wait_until

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[1]
TOKEN = "deployed-shape-token"


LOADED = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def loaded_locations(ui: int) -> list[str]:
    entries = graphql(ui, LOADED)["workspaceOrError"]["locationEntries"]
    loaded = [e["name"] for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"]
    return loaded if len(loaded) == len(entries) else []


def tds(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tds_pipelines.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_procfile_is_what_tds_roles_prints_and_a_wrong_role_is_one_line():
    assert (REPO / "Procfile").read_text() == procfile()
    listed = tds("roles")
    assert listed.returncode == 0 and listed.stdout == procfile()
    wrong = tds("role", "scheduler")
    assert wrong.returncode == 1 and wrong.stderr.strip().splitlines() == [
        "tds: no role 'scheduler': the roles are code-server, webserver, daemon, receiver"
    ]


def deployed_env(erp_url: str, dagster_url: str, schema: str, home: Path) -> tuple[dict[str, str], dict[str, int]]:
    """The environment every role gets (the production dagster.yaml in `home`, free ports, loopback only),
    and the ports."""
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    ports = {"TDS_CODE_SERVER_PORT": free_port(), "TDS_UI_PORT": free_port(), "TDS_WEBHOOK_PORT": free_port()}
    env = dict(os.environ) | dagster_pg_env(dagster_url) | {k: str(v) for k, v in ports.items()}
    env |= {"DAGSTER_HOME": str(home), "TDS_BIND_HOST": "127.0.0.1", "TDS_CODE_SERVER_HOST": "127.0.0.1"}
    env |= {"TDS_DATABASE_URL": erp_url, "TDS_DB_SCHEMA": schema, "TDS_WEBHOOK_TOKEN": TOKEN}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # the venv's dagster and tds
    return env, ports


def start_role(role: str, env: dict[str, str]):
    """`tds role ROLE` as its own process group, as the container image starts it (a context manager)."""
    return process_group([sys.executable, "-m", "tds_pipelines.cli", "role", role], env)


def start_roles(stack: ExitStack, env: dict[str, str], ports: dict[str, int]) -> dict[str, subprocess.Popen]:
    """Every role, the code server first (the others find it at start); returns the processes by role."""
    started = {}
    for role, _ in ROLES:
        started[role] = stack.enter_context(start_role(role, env))
        if role == "code-server":
            wait_until(lambda: listening(ports["TDS_CODE_SERVER_PORT"]), 180, "the code server")
    ui = ports["TDS_UI_PORT"]
    wait_until(lambda: requests.get(f"http://127.0.0.1:{ui}/server_info", timeout=2).ok, 180, "the webserver")
    assert wait_until(lambda: loaded_locations(ui), 120, "the code location, loaded") == ["tds_pipelines"]
    return started


def test_each_role_as_its_own_process_runs_a_job_on_postgres(pg_server_url, pg_dagster_url, tmp_path):
    erp = fresh_erp(pg_server_url)
    env, ports = deployed_env(pg_server_url, pg_dagster_url, erp.schema, tmp_path / "dagster_home")
    ui, receiver = ports["TDS_UI_PORT"], ports["TDS_WEBHOOK_PORT"]
    with ExitStack() as roles:
        start_roles(roles, env, ports)
        assert run_job(ui, "auto_heal") == "SUCCESS"  # queued, dequeued by the daemon, run via the code server
        health = wait_until(lambda: requests.get(f"http://127.0.0.1:{receiver}/health", timeout=5), 60, "receiver")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        delivery = requests.post(
            f"http://127.0.0.1:{receiver}/webhooks/zoho",
            json={"item": {"item_id": "42", "name": "deployed"}},
            headers={"X-TDS-Token": TOKEN},
            timeout=30,
        )
        assert delivery.status_code == 200, delivery.text
