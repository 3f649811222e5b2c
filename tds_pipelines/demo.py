"""`tds demo`: the whole system on the embedded default, for a newcomer.

SQLite for the ERP and for Dagster's instance (a DAGSTER_HOME under `.tds/` kept across restarts), the
bundled Zoho simulator delivering webhooks to the receiver (`tds webhooks`), and `dagster dev` (webserver +
daemon) with every schedule, sensor and asset.
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tds_pipelines import settings
from tds_pipelines.cli_errors import masked_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import client_environment

DEMO_INSTANCE_YAML = """\
# The demo's Dagster instance: SQLite storage under this folder (made by `tds demo`, kept across restarts).
telemetry:
  enabled: false
nux:
  enabled: false
freshness:
  # The entity assets' freshness policies (a preview feature, off unless enabled).
  enabled: true
run_queue:
  # SQLite is demo-grade: concurrent runs can hit "database is locked".
  max_concurrent_runs: 1
"""
DEMO_CALLS_PER_MINUTE = 1000  # the demo's simulator allows more than Zoho so a first sync takes seconds
DAGSTER_START_SECONDS = 180  # loading the code location takes a while on a slow machine


def prepare_instance(home: Path) -> Path:
    """The demo's DAGSTER_HOME with its dagster.yaml (written once, kept afterwards)."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEMO_INSTANCE_YAML)
    return dagster_home


def tds_environment(simulator_url: str) -> dict[str, str]:
    """What a `tds` command needs to work on the demo: its ERP, the simulator's credentials, its budget."""
    return client_environment(simulator_url) | {
        "TDS_DATABASE_URL": settings.database_url(),
        "TDS_ZOHO_CALLS_PER_MINUTE": str(DEMO_CALLS_PER_MINUTE),
    }


def demo_environment(home: Path, simulator_url: str) -> dict[str, str]:
    return dict(os.environ) | tds_environment(simulator_url) | {"DAGSTER_HOME": str(prepare_instance(home))}


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port` (where the demo's servers listen)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: a just-closed port is free
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for(url: str, process: subprocess.Popen, name: str, seconds: float) -> None:
    """Until `url` answers 2xx; exits (code 1) saying so when `process` dies or the time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tds demo: {name} exited with code {process.returncode} while starting (see above)")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"tds demo: {name} did not answer at {url} within {seconds:.0f}s (see above)")


def second_shell_hint(simulator_url: str) -> str:
    """How to run `tds sync` / `tds status` from another shell against the running demo."""
    exports = " ".join(f"{k}={shlex.quote(masked_url(v))}" for k, v in tds_environment(simulator_url).items())
    tds = Path(sys.executable).with_name("tds")
    return f"From a second shell:\n  export {exports}\n  {tds} sync; {tds} status"


_FIRST_ID = 'import json, sys; print(json.load(sys.stdin)["ids"][0])'


def try_a_webhook_hint(simulator_url: str) -> str:
    """How to watch an edit in the simulator reach the ERP by itself."""
    return (
        "Try a webhook: edit an invoice as a Zoho user would, and the receiver, the queue sensor and\n"
        "process_webhook_queue bring it to the ERP within seconds, with no run launched by hand:\n"
        f"  id=$(curl -s {simulator_url}/admin/invoices | python3 -c {shlex.quote(_FIRST_ID)})\n"
        f'  curl -s -X PATCH {simulator_url}/admin/invoices/$id -d \'{{"reference_number": "edited in Zoho"}}\''
    )


def try_a_mismatch_hint(erp_path: Path) -> str:
    """How to watch the statistics comparison catch an ERP that lost a row, and raise one alert."""
    remove = (
        f"import sqlite3; db = sqlite3.connect({str(erp_path)!r}); db.execute('DELETE FROM zoho_invoices "
        "WHERE zoho_id = (SELECT min(zoho_id) FROM zoho_invoices)'); db.commit()"
    )
    return (
        "Try a mismatch: remove an invoice from the ERP behind TDS's back, then launch the\n"
        "statistics_comparison job in the UI: zoho/invoices' count check turns red and one alert is raised\n"
        "(`tds status` lists it; the next full sync puts the invoice back, the next comparison resolves it):\n"
        f"  python3 -c {shlex.quote(remove)}"
    )


def run_demo(ui_port: int, simulator_port: int, records: int, webhook_port: int = 8000) -> int:
    ports = ((ui_port, "Dagster UI", "PORT"), (simulator_port, "simulator", "SIMULATOR_PORT"))
    ports += ((webhook_port, "webhook receiver", "WEBHOOK_PORT"),)
    for port, server, variable in ports:
        if port_taken(port):
            chosen = {ui_port, simulator_port, webhook_port}
            free = next(p for p in range(port + 1, 65536) if p not in chosen and not port_taken(p))
            raise SystemExit(f"tds demo: port {port} ({server}) is taken; pick another: make demo {variable}={free}")
    home = settings.DEFAULT_HOME.resolve()
    os.environ.setdefault("TDS_DATABASE_URL", f"sqlite:///{home / 'erp.sqlite'}")
    upgrade()
    simulator_url = f"http://127.0.0.1:{simulator_port}"
    token = secrets.token_hex(16)  # shared by the simulator's rules and the receiver; hex: never "-..."
    env = demo_environment(home, simulator_url) | {"TDS_WEBHOOK_TOKEN": token}
    tds = [sys.executable, "-m", "tds_pipelines.cli"]
    receiver = subprocess.Popen([*tds, "webhooks", "--port", str(webhook_port)], env=env)
    processes = [receiver]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a plain kill stops the children too
    try:
        wait_for(f"http://127.0.0.1:{webhook_port}/health", receiver, "the webhook receiver", 60)
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
                "--webhook-url",
                f"http://127.0.0.1:{webhook_port}/webhooks/zoho",
                "--webhook-token",
                token,
            ],
            env=env,
        )
        processes.append(simulator)
        wait_for(f"{simulator_url}/admin/stats", simulator, "the Zoho simulator", 60)
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
        # Announce the UI only once it answers: `dagster dev` outlives a webserver that could not start.
        wait_for(
            f"http://127.0.0.1:{ui_port}/server_info",
            dagster,
            "the Dagster webserver (dagster dev)",
            DAGSTER_START_SECONDS,
        )
        print(f"\nTDS demo: Dagster UI at http://127.0.0.1:{ui_port}  (Zoho simulator at {simulator_url})")
        print(f"Webhook receiver at http://127.0.0.1:{webhook_port}/webhooks/zoho (health: /health)")
        print("Materialize the assets (or launch the full_sync job) to fill the ERP; Ctrl-C stops everything.")
        print(try_a_webhook_hint(simulator_url))
        print(try_a_mismatch_hint(home / "erp.sqlite"))
        print(second_shell_hint(simulator_url) + "\n", flush=True)
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
