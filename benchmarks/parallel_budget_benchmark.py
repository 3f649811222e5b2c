"""Three syncs in parallel processes against the simulator's 100 calls a minute.

    .venv/bin/python benchmarks/parallel_budget_benchmark.py [--records N]

Each process is a real `tds sync --full --entity X` sharing one ERP database, hence one token cache and one
rate budget. Prints the code-44 answers (target 0), the share of the budget used while work was pending
(target at least 90%: calls made / the most a 100-a-minute sliding window allows between the first and the
last call), and token refreshes (target at most 1). Baseline in the same run: one process doing the same
work alone.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import requests
from _common import DATABASE_URL, simulator_process, stats, throwaway_schema
from sqlalchemy import text

from tds_pipelines.simulator.config import client_environment

LIMIT = 100
ENTITIES = ("invoices", "bills", "sales_orders")


def run_syncs(url: str, schema: str, groups: list[list[str]]) -> float:
    env = dict(os.environ) | client_environment(url)
    env |= {
        "TDS_DATABASE_URL": DATABASE_URL,
        "TDS_DB_SCHEMA": schema,
        "TDS_ZOHO_CALLS_PER_MINUTE": str(LIMIT),
    }
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tds_pipelines.cli",
                "sync",
                "--full",
                *[a for e in group for a in ("--entity", e)],
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in groups
    ]
    for process in processes:
        out, _ = process.communicate(timeout=1800)
        if process.returncode:
            raise SystemExit(f"a sync failed with exit code {process.returncode}:\n{out}")
    return time.monotonic() - started


def report(label: str, url: str, engine, seconds: float) -> None:
    """Figures from the simulator's counters and from the shared call log the processes wrote."""
    sim = stats(url)
    with engine.connect() as conn:
        calls, first, last = conn.execute(
            text("SELECT count(*), min(called_at), max(called_at) FROM tds_api_calls")
        ).one()
    span = (last - first).total_seconds()
    allowed = LIMIT * (int(span // 60) + 1)  # the most a sliding LIMIT-a-minute window admits over that span
    rejected = sim["rejected"]
    print(
        f"{label}: {calls} calls in {seconds:.1f}s; code 44 answers: {rejected['44']}, code 1070: {rejected['1070']}; "
        f"budget used while work was pending: {calls / allowed:.0%} ({calls} of the {allowed} calls a sliding "
        f"{LIMIT}/min window admits over {span:.1f}s); token refreshes: {sim['token_refreshes']}; "
        f"peak calls in any 60 s: {sim['peak_per_minute_window']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=90, help="records per entity (each costs a detail call)")
    args = parser.parse_args()
    sim_args = ["--records", str(args.records), "--rate-limit-per-minute", str(LIMIT), "--daily-limit", "0"]
    print(f"parallel budget benchmark: 3 processes x {args.records} documents, simulator at {LIMIT} calls/min")
    with simulator_process(*sim_args) as url:
        with throwaway_schema() as (engine, schema):
            seconds = run_syncs(url, schema, [[name] for name in ENTITIES])
            report("3 processes in parallel", url, engine, seconds)
        # The baseline keeps its own call log: start it on a fresh simulator minute, as if an hour later.
        for route in ("reset-stats", "reset-limits"):
            requests.post(f"{url}/admin/{route}", timeout=10).raise_for_status()
        with throwaway_schema() as (engine, schema):
            seconds = run_syncs(url, schema, [list(ENTITIES)])
            report("baseline, 1 process, same work", url, engine, seconds)


if __name__ == "__main__":
    main()
