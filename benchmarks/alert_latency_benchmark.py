"""Alert latency under `dagster dev` with default settings: a failed run, and a failed check, to the alert's
POST at a capture server.

    .venv/bin/python benchmarks/alert_latency_benchmark.py [--trials N]

Starts `dagster dev` (webserver + daemon, a SQLite instance of its own) on a throwaway ERP schema with
TDS_ALERT_WEBHOOK_URL pointed at a local capture server, then N times:
  (a) launches `process_single_webhook` for a queue id that does not exist: the run fails, the run-failure
      sensor (`tds_run_failure_alerts`, every 10 s) raises the alert and posts it. Latency = the POST's arrival
      minus the run's end (Dagster's endTime);
  (b) plants a dead letter and launches `auto_heal`: its `no_dead_letters` check fails and posts the alert
      itself. Latency = the POST's arrival minus the run's start (the check is evaluated inside the run).
Between trials the incident is resolved in the database (its recovery marked sent), so each trial is a new
incident. Prints p50 and max of both.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from _common import DATABASE_URL, free_port, simulator_process, throwaway_schema, wait_for
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import text

HERE = Path(__file__).resolve().parent
LOGS = Path(tempfile.gettempdir()) / "tds-alert-latency.log"  # dagster dev's output
RUN_TIMES = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"


class Capture:
    """A local HTTP server noting when each POST arrives."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                capture.arrivals.append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


def run_times(ui_port: int, run_id: str) -> dict | None:
    answer = requests.post(
        f"http://127.0.0.1:{ui_port}/graphql", json={"query": RUN_TIMES, "variables": {"id": run_id}}, timeout=10
    ).json()["data"]["runOrError"]
    return answer if answer.get("endTime") else None


def trial(client: DagsterGraphQLClient, ui_port: int, capture: Capture, job: str, config: dict) -> dict:
    """Launch `job`, wait for its end and for one more POST; returns the run's times and the POST's arrival."""
    posts = len(capture.arrivals)
    run_id = client.submit_job_execution(job, run_config=config)
    times = wait_for(lambda: run_times(ui_port, run_id), 180, f"the {job} run's end", LOGS)
    wait_for(lambda: len(capture.arrivals) > posts, 120, f"the alert of the {job} run", LOGS)
    return times | {"posted": capture.arrivals[posts]}


def resolve_all(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE tds_alerts SET resolved_at = now(), recovery_notified_at = now() WHERE resolved_at IS NULL")
        )
        conn.execute(text("DELETE FROM tds_sync_queue"))


def plant_dead_letter(engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tds_sync_queue (status, event, entity, zoho_id, payload, attempts, last_error, "
                "received_at, body_hash) VALUES ('DEAD_LETTER', 'webhook', 'products', :id, '{}', 5, 'poison', "
                ":now, :hash)"
            ),
            {"id": str(n), "now": datetime.now(UTC), "hash": f"alert-bench-{n}-{time.time()}"},
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    capture = Capture()
    with throwaway_schema() as (engine, schema), tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
        ui_port = free_port()
        with simulator_process("--records", "3") as sim_url:
            env = dict(os.environ) | {
                "TDS_DATABASE_URL": DATABASE_URL,
                "TDS_DB_SCHEMA": schema,
                "TDS_ALERT_WEBHOOK_URL": capture.url,
                "DAGSTER_HOME": str(home),
                "ZOHO_ACCOUNTS_URL": sim_url,
                "ZOHO_API_URL": sim_url,
                "ZOHO_ORGANIZATION_ID": "10234695",
                "ZOHO_CLIENT_ID": "sim-client",
                "ZOHO_CLIENT_SECRET": "sim-secret",
                "ZOHO_REFRESH_TOKEN": "sim-refresh",
            }
            command = [sys.executable, "-m", "dagster", "dev", "-m", "tds_pipelines.definitions", "-p", str(ui_port)]
            dagster = subprocess.Popen(
                command, env=env, cwd=HERE.parent, stdout=LOGS.open("a"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            try:
                wait_for(lambda: requests.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=2).ok, 180, "UI", LOGS)
                measure(DagsterGraphQLClient("127.0.0.1", port_number=ui_port), ui_port, capture, engine, args.trials)
            finally:
                os.killpg(dagster.pid, signal.SIGINT)
                try:
                    dagster.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(dagster.pid, signal.SIGKILL)


def measure(client: DagsterGraphQLClient, ui_port: int, capture: Capture, engine, trials: int) -> None:
    missing = {"ops": {"apply_one_webhook": {"config": {"queue_id": 999_999_999}}}}
    failed_runs, failed_checks = [], []
    for n in range(trials):
        resolve_all(engine)
        run = trial(client, ui_port, capture, "process_single_webhook", missing)
        failed_runs.append(run["posted"] - run["endTime"])
        resolve_all(engine)
        plant_dead_letter(engine, n)
        heal = trial(client, ui_port, capture, "auto_heal", {})
        failed_checks.append(heal["posted"] - heal["startTime"])
    for label, values in (
        ("(a) run failure: run end -> POST", failed_runs),
        ("(b) failed check: run start -> POST", failed_checks),
    ):
        print(f"{label:40} p50 {statistics.median(values):5.2f} s  max {max(values):5.2f} s  ({len(values)} trials)")


if __name__ == "__main__":
    main()
