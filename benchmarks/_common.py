"""What the sync benchmarks share: a simulator in its own process, a throwaway ERP schema, a client, a
mid-size organization to simulate and the full_sync job's code."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.db import make_engine, normalize_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import client_environment
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.stock import sync_item_stock
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.credentials import ZohoCredentials

DATABASE_URL = normalize_url(
    os.environ.get("TDS_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
)
UNLIMITED = 10**9  # calls a minute or a day: as good as no limit
# How schedule_cost.py's organizations split their documents (7,000 invoices in 18,200 documents, ...).
DOCUMENT_SHARES = {
    "invoices": 7_000,
    "sales_orders": 5_000,
    "customer_payments": 4_000,
    "bills": 1_500,
    "credit_notes": 300,
    "stock_adjustments": 400,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def simulator_process(*args: str, ready_seconds: float = 300):
    """`tds simulator ARGS` in its own process (so it does not share the measured process); yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tds_pipelines.cli", "simulator", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + ready_seconds
        while True:
            try:
                requests.get(f"{url}/admin/stats", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the simulator did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def throwaway_schema():
    """A migrated TDS schema in the benchmark database, dropped afterwards; yields (engine, schema)."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    upgrade(DATABASE_URL, schema)
    try:
        yield make_engine(DATABASE_URL, schema), schema
    finally:
        make_engine(DATABASE_URL, schema).dispose()
        admin = create_engine(DATABASE_URL)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def simulator_client(url: str, engine, job: str, per_minute: int) -> ZohoClient:
    return ZohoClient(ZohoCredentials.from_env(client_environment(url)), engine, job=job, per_minute=per_minute)


def stats(url: str) -> dict:
    return requests.get(f"{url}/admin/stats", timeout=10).json()


def organization(items: int, documents: int, warehouses: int) -> dict[str, int]:
    """Records per entity of a mid-size organization: `documents` split over the document entities as
    schedule_cost.py's organizations split theirs, 1,000 customers, 100 vendors, 5 price lists, 10 users."""
    total = sum(DOCUMENT_SHARES.values())
    docs = {name: documents * share // total for name, share in DOCUMENT_SHARES.items()}
    docs["invoices"] += documents - sum(docs.values())
    masters = {"products": items, "customers": 1_000, "vendors": 100}
    return masters | docs | {"price_lists": 5, "users": 10, "warehouses": warehouses}


def unlimited_simulator_args(records: dict[str, int]) -> list[str]:
    """`tds simulator` flags for an organization of `records` per entity, with limits too high to matter."""
    args = ["--rate-limit-per-minute", str(UNLIMITED), "--daily-limit", str(UNLIMITED), "--concurrency-limit", "0"]
    for name, n in records.items():
        args += ["--entity-records", f"{name}={n}"]
    return args


def full_sync(client: ZohoClient, engine, run_id: str | None = None) -> list[SyncStats]:
    """The full_sync job's code (tds_pipelines/assets.py): every entity listed whole, then stock per warehouse."""
    results = [sync_entity(spec, client, engine, Scope("full"), run_id) for spec in ENTITIES]
    return [*results, sync_item_stock(client, engine, run_id, full=True)]


def organization_from_args(description: str) -> dict[str, int]:
    """`organization` sized by the command line: --items (5,000), --documents (20,000), --warehouses (2)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--warehouses", type=int, default=2)
    args = parser.parse_args()
    return organization(args.items, args.documents, args.warehouses)


def wait_for(predicate, seconds: float, what: str, logs: Path):
    """`predicate()`'s first truthy value, polled for up to `seconds` (a refused connection counts as not yet);
    past them the script stops, pointing at the servers' output in `logs`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what} (the servers' output: {logs})")
