"""What the sync benchmarks share: a simulator in its own process, a throwaway ERP schema, a client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import requests
from sqlalchemy import create_engine, text

from tds_pipelines.erp.db import make_engine, normalize_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import client_environment
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.credentials import ZohoCredentials

DATABASE_URL = normalize_url(
    os.environ.get("TDS_BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
)


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
