"""`tds demo`: the whole system on the embedded default, for a newcomer.

SQLite for the ERP and for Dagster's instance (a DAGSTER_HOME under `.tds/` kept across restarts), the
bundled Zoho simulator, and `dagster dev` (webserver + daemon) with every schedule and asset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tds_pipelines import settings
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import client_environment

DEMO_INSTANCE_YAML = """\
# The demo's Dagster instance: SQLite storage under this folder (made by `tds demo`, kept across restarts).
telemetry:
  enabled: false
nux:
  enabled: false
run_queue:
  # SQLite is demo-grade: concurrent runs can hit "database is locked".
  max_concurrent_runs: 1
"""
DEMO_CALLS_PER_MINUTE = 1000  # the demo's simulator allows more than Zoho so a first sync takes seconds


def prepare_instance(home: Path) -> Path:
    """The demo's DAGSTER_HOME with its dagster.yaml (written once, kept afterwards)."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEMO_INSTANCE_YAML)
    return dagster_home


def demo_environment(home: Path, simulator_url: str) -> dict[str, str]:
    return (
        dict(os.environ)
        | client_environment(simulator_url)
        | {
            "DAGSTER_HOME": str(prepare_instance(home)),
            "TDS_DATABASE_URL": settings.database_url(),
            "TDS_ZOHO_CALLS_PER_MINUTE": str(DEMO_CALLS_PER_MINUTE),
        }
    )


def wait_for(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tds demo: {' '.join(process.args[:4])} exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise SystemExit(f"tds demo: nothing answered at {url} within {seconds:.0f}s")


def run_demo(ui_port: int, simulator_port: int, records: int) -> int:
    home = settings.DEFAULT_HOME.resolve()
    os.environ.setdefault("TDS_DATABASE_URL", f"sqlite:///{home / 'erp.sqlite'}")
    upgrade()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    env = demo_environment(home, simulator_url)
    tds = [sys.executable, "-m", "tds_pipelines.cli"]
    simulator = subprocess.Popen(
        [
            *tds,
            "simulator",
            "--port",
            str(simulator_port),
            "--records",
            str(records),
            "--rate-limit-per-minute",
            str(DEMO_CALLS_PER_MINUTE),
        ],
        env=env,
    )
    processes = [simulator]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain kill stops the children too
    try:
        wait_for(f"{simulator_url}/admin/stats", simulator, 60)
        dagster = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-m",
                "tds_pipelines.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(ui_port),
            ],
            env=env,
        )
        processes.append(dagster)
        print(f"\nTDS demo: Dagster UI at http://127.0.0.1:{ui_port}  (Zoho simulator at {simulator_url})")
        print("Materialize the assets (or launch the full_sync job) to fill the ERP; Ctrl-C stops everything.\n")
        return dagster.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
