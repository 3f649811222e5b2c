"""Screenshots of the Dagster UI for docs/operations.md, taken by headless Chromium (the system's, through
Playwright) against a running `tds demo`, and the check that the UI shows what the manual says.

    .venv/bin/python docs/shots.py [--out docs/screenshots]      # make docs-shots

Starts `tds demo` in a scratch folder on free ports, runs full_sync, launches a backfill of three invoice
months, removes an invoice from the ERP behind TDS's back and runs statistics_comparison, then photographs
the asset graph, the backfill, the schedules and sensors, the failed count check and the full sync's run.
Fails (AssertionError) when the UI lacks an asset, a schedule or sensor is not running, an entity has no
count check, or the planted mismatch does not show as a failed check.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from tds_pipelines.entities import ENTITIES

CHROMIUM = os.environ.get("TDS_CHROMIUM", "/usr/bin/chromium")
# Headless, and quiet on a closed network (no update checks, no sync, no first-run pages).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS += ["--disable-sync", "--no-first-run"]
SCHEDULES = {
    "daily_full_sync",
    "hourly_incremental_sync",
    "stock_sync_every_15_minutes",
    "auto_heal_every_15_minutes",
    "daily_statistics_comparison",
    "daily_run_history_purge",
}
SENSORS = {
    "zoho_webhook_queue_sensor",
    "tds_run_failure_alerts",
    "tds_run_recovery_alerts",
    "tds_alert_notifier",
    "tds_run_watchdog",
}
STATES = """{ schedulesOrError(repositorySelector: {repositoryLocationName: "tds_pipelines.definitions",
  repositoryName: "__repository__"}) { ... on Schedules { results { name scheduleState { status } } } }
  sensorsOrError(repositorySelector: {repositoryLocationName: "tds_pipelines.definitions",
  repositoryName: "__repository__"}) { ... on Sensors { results { name sensorState { status } } } } }"""
CHECKS = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
BACKFILL = """mutation($months: [String!]) { launchPartitionBackfill(backfillParams: {
  assetSelection: [{path: ["zoho", "invoices"]}], partitionNames: $months }) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
RUN = """mutation($job: String!) { launchRun(executionParams: {selector: {repositoryLocationName:
  "tds_pipelines.definitions", repositoryName: "__repository__", jobName: $job}}) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
BACKFILL_STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""
STATUS = """query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


class Demo:
    """`tds demo` in a scratch folder on free ports, stopped at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.ui = folder, free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TDS_", "ZOHO_", "DAGSTER_"))}
        command = [sys.executable, "-m", "tds_pipelines.cli", "demo", "--port", str(self.ui)]
        command += ["--simulator-port", str(free_port()), "--webhook-port", str(free_port())]
        self.process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.ui}"

    def __enter__(self) -> Demo:
        wait_for(lambda: requests.get(f"{self.url}/server_info", timeout=2).ok, 240, "the demo's UI")
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=90)

    def graphql(self, query: str, **variables) -> dict:
        answer = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60)
        return answer.json()["data"]

    def run(self, job: str) -> str:
        """Launch `job`, wait for it to succeed; returns the run id."""
        launched = self.graphql(RUN, job=job)["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = wait_for(
            lambda: (s := self.graphql(STATUS, id=run_id)["runOrError"]["status"]) in ("SUCCESS", "FAILURE") and s,
            300,
            f"the {job} run",
        )
        assert status == "SUCCESS", f"{job} ended {status}"
        return run_id


def plant_mismatch(erp: Path) -> None:
    """An invoice removed from the ERP behind TDS's back (as docs/operations.md's demo hint does)."""
    with sqlite3.connect(erp) as db:
        db.execute("DELETE FROM zoho_invoices WHERE zoho_id = (SELECT min(zoho_id) FROM zoho_invoices)")


def check_ui_facts(demo: Demo) -> None:
    """What the manual says the UI shows: every schedule and sensor running, a count check on every entity."""
    states = demo.graphql(STATES)
    schedules = {s["name"]: s["scheduleState"]["status"] for s in states["schedulesOrError"]["results"]}
    sensors = {s["name"]: s["sensorState"]["status"] for s in states["sensorsOrError"]["results"]}
    assert schedules == dict.fromkeys(SCHEDULES, "RUNNING"), schedules
    assert sensors == dict.fromkeys(SENSORS, "RUNNING"), sensors
    checks = {
        "/".join(node["assetKey"]["path"]): {c["name"] for c in node["assetChecksOrError"].get("checks", [])}
        for node in demo.graphql(CHECKS)["assetNodes"]
    }
    for spec in ENTITIES:  # item_stock is not a Zoho list: nothing to count
        assert "count_matches_zoho" in checks[f"zoho/{spec.name}"], spec.name


def take_shots(out: Path) -> list[Path]:
    """Run the demo, check the UI, photograph it into `out`; returns the pictures."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, Demo(Path(scratch)) as demo, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        shots = []

        def shot(name: str, path: str, shows: str) -> str:
            page.goto(demo.url + path)
            page.get_by_text(shows).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # let the graph lay itself out
            shots.append(out / f"{name}.png")
            page.screenshot(path=shots[-1])
            return page.inner_text("body")

        full_sync = demo.run("full_sync")
        months = ["2024-01-01", "2024-02-01", "2024-03-01"]
        backfill = demo.graphql(BACKFILL, months=months)["launchPartitionBackfill"]
        assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
        shot("backfill", f"/runs/b/{backfill['backfillId']}", "invoices")  # as it runs

        def backfill_ended() -> str | None:
            answer = demo.graphql(BACKFILL_STATUS, id=backfill["backfillId"])["partitionBackfillOrError"]
            return None if answer["status"] in ("REQUESTED", "CANCELING", "FAILING") else answer["status"]

        ended = wait_for(backfill_ended, 300, "the backfill")
        assert ended in ("COMPLETED", "COMPLETED_SUCCESS"), f"the backfill ended {ended}"
        plant_mismatch(Path(scratch) / ".tds" / "erp.sqlite")
        demo.run("statistics_comparison")
        check_ui_facts(demo)
        shot("asset-graph", "/asset-groups", "zoho")
        automation = shot("schedules-and-sensors", "/automation", "daily_statistics_comparison")
        for name in SCHEDULES | SENSORS:
            assert name in automation, f"{name} is not on the Automation page"
        checks = shot("failed-statistics-check", "/assets/zoho/invoices?view=checks", "count_matches_zoho")
        assert "Failed" in checks, "the planted mismatch does not show as a failed check"
        shot("run-metadata", f"/runs/{full_sync}", "full_sync")
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshots")
    for picture in take_shots(parser.parse_args().out):
        print(picture)


if __name__ == "__main__":
    main()
