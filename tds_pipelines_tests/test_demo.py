"""`tds demo` (what `make demo` runs): the UI comes up with every asset, a sync fills the SQLite ERP."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import requests
from dagster import AssetKey

from tds_pipelines_tests.sync_fixtures import free_port
from tds_pipelines_tests.test_definitions import ENTITY_KEYS
from tds_pipelines_tests.test_e2e_dagster_dev import ASSET_KEYS, graphql, run_job, wait_until


def test_demo_starts_everything_on_the_embedded_default(tmp_path):
    ui, sim = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDS_", "ZOHO_", "DAGSTER_"))}
    demo = subprocess.Popen(
        [sys.executable, "-m", "tds_pipelines.cli", "demo", "--port", str(ui), "--simulator-port", str(sim)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{ui}/server_info", timeout=2).ok, 180, "the demo's UI")
        keys = {AssetKey(node["assetKey"]["path"]) for node in graphql(ui, ASSET_KEYS)["assetNodes"]}
        assert keys == ENTITY_KEYS
        assert run_job(ui, "full_sync") == "SUCCESS"
        with sqlite3.connect(tmp_path / ".tds" / "erp.sqlite") as erp:
            assert erp.execute("SELECT count(*) FROM zoho_invoice_line_items").fetchone()[0] > 0
        assert (tmp_path / ".tds" / "dagster_home" / "dagster.yaml").exists()
    finally:
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=90) == 0
    # Nothing the demo started keeps its ports.
    for port in (ui, sim):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            raise AssertionError(f"port {port} still answers after the demo stopped")
        except requests.ConnectionError:
            pass
