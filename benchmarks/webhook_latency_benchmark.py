"""End to end under `dagster dev` with default settings: a change made in Zoho -> the row in the ERP table.

    .venv/bin/python benchmarks/webhook_latency_benchmark.py [--webhooks N]

Starts the webhook receiver, the simulator (its workflow rules pointed at the receiver) and `dagster dev`
(webserver + daemon, a SQLite instance of its own) on a throwaway ERP schema, then edits one invoice every
1-3 s through the simulator's admin route, N times. Latency = the row's `written_at` minus the moment the edit
was made (the webhook is accepted a few milliseconds later: the figure slightly overstates). Baseline in the
same run, Dagster's floor: a second code location whose sensor, of the same interval, launches an empty run
for a marker dropped at the same moment as each edit; its latency ends when that run's op executes. Prints
p50/p95 of both and their ratios (targets: p50 <= 8 s, p95 <= 20 s, within 1.5x of the floor).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _common import DATABASE_URL, free_port, simulator_process, throwaway_schema, wait_for
from sqlalchemy import text

HERE = Path(__file__).resolve().parent
TOKEN = "latency-benchmark-token"
LOGS = Path(tempfile.gettempdir()) / "tds-webhook-latency.log"  # the receiver's and dagster dev's output


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=50)
    args = parser.parse_args()
    with throwaway_schema() as (engine, schema), tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        markers, home = scratch / "markers", scratch / "dagster_home"
        markers.mkdir()
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
        (scratch / "workspace.yaml").write_text(
            "load_from:\n  - python_module: tds_pipelines.definitions\n"
            f"  - python_file: {HERE / 'latency_floor' / 'floor_location.py'}\n"
        )
        receiver_port, ui_port = free_port(), free_port()
        env = dict(os.environ) | {
            "TDS_DATABASE_URL": DATABASE_URL,
            "TDS_DB_SCHEMA": schema,
            "TDS_WEBHOOK_TOKEN": TOKEN,
            "TDS_FLOOR_MARKERS": str(markers),
            "DAGSTER_HOME": str(home),
        }
        children = [
            subprocess.Popen(
                [sys.executable, "-m", "tds_pipelines.cli", "webhooks", "--port", str(receiver_port)],
                env=env,
                stdout=LOGS.open("a"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ]
        # One invoice per edit: a later edit of the same invoice would hide when the earlier one arrived.
        sim_args = ["--records", str(args.webhooks + 2), "--rate-limit-per-minute", "0", "--daily-limit", "0"]
        sim_args += ["--webhook-url", f"http://127.0.0.1:{receiver_port}/webhooks/zoho", "--webhook-token", TOKEN]
        try:
            wait_for(
                lambda: requests.get(f"http://127.0.0.1:{receiver_port}/health", timeout=2).ok, 60, "receiver", LOGS
            )
            with simulator_process(*sim_args) as sim_url:
                env |= {"ZOHO_ACCOUNTS_URL": sim_url, "ZOHO_API_URL": sim_url, "ZOHO_ORGANIZATION_ID": "10234695"}
                env |= {"ZOHO_CLIENT_ID": "sim-client", "ZOHO_CLIENT_SECRET": "sim-secret"}
                env |= {"ZOHO_REFRESH_TOKEN": "sim-refresh"}
                dagster = ["dagster", "dev", "-w", str(scratch / "workspace.yaml"), "-p", str(ui_port)]
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", *dagster],
                        env=env,
                        cwd=HERE.parent,
                        stdout=LOGS.open("a"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                wait_for(lambda: requests.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=2).ok, 180, "UI", LOGS)
                measure(sim_url, engine, markers, args.webhooks)
        finally:
            for child in children:
                os.killpg(child.pid, signal.SIGINT)
            for child in children:
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)


def measure(sim_url: str, engine, markers: Path, count: int) -> None:
    ids = requests.get(f"{sim_url}/admin/invoices", timeout=10).json()["ids"]
    # Warm-up: the first runs of each location load code; measure what an operator sees once it is up.
    edit(sim_url, ids[0], "warm-up")
    (markers / "1.sent").write_text("")
    wait_for(lambda: (markers / "1.done").exists() and arrived(engine, ids[0], "warm-up"), 180, "the warm-up", LOGS)
    sent: dict[int, tuple[str, str, float]] = {}
    rng = random.Random(7)
    print(f"sending {count} webhooks, one every 1-3 s")
    for n in range(2, count + 2):
        invoice_id, reference = ids[n - 1], f"latency {n}"
        started = time.time()
        edit(sim_url, invoice_id, reference)
        (markers / f"{n}.sent").write_text("")
        sent[n] = (invoice_id, reference, started)
        time.sleep(rng.uniform(1, 3))
    tds, floor = [], []
    for n, (invoice_id, reference, started) in sent.items():
        written = wait_for(
            lambda i=invoice_id, r=reference: arrived(engine, i, r), 120, f"webhook {n} in the ERP", LOGS
        )
        done = markers / f"{n}.done"
        wait_for(done.exists, 120, f"floor run {n}", LOGS)
        floor.append(float(done.read_text()) - started)
        tds.append(written - started)
    for label, values in (("TDS: accepted -> row in the ERP", tds), ("floor: marker -> empty run executes", floor)):
        print(
            f"{label:38} p50 {percentile(values, 50):5.1f} s  p95 {percentile(values, 95):5.1f} s  "
            f"max {max(values):5.1f} s  ({len(values)} webhooks)"
        )
    print(
        f"ratio to the floor: p50 {percentile(tds, 50) / percentile(floor, 50):.2f}, "
        f"p95 {percentile(tds, 95) / percentile(floor, 95):.2f} (target <= 1.5); targets p50 <= 8 s, p95 <= 20 s"
    )


def edit(sim_url: str, invoice_id: str, reference: str) -> None:
    response = requests.patch(
        f"{sim_url}/admin/invoices/{invoice_id}", json={"reference_number": reference}, timeout=10
    )
    response.raise_for_status()


def arrived(engine, invoice_id: str, reference: str) -> float | None:
    """When the invoice's row was written with `reference` (epoch seconds), or None while it is not."""
    with engine.connect() as conn:
        written = conn.execute(
            text("SELECT written_at FROM zoho_invoices WHERE zoho_id = :id AND raw->>'reference_number' = :ref"),
            {"id": invoice_id, "ref": reference},
        ).scalar()
    return written.timestamp() if written else None


if __name__ == "__main__":
    main()
