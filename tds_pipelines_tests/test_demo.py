"""`tds demo` (what `make demo` runs): the UI comes up with every asset, a sync fills the SQLite ERP, an edit in
the simulator reaches the ERP through the webhook receiver by itself."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dagster import AssetKey

from tds_pipelines.health import QUEUE_KEY
from tds_pipelines_tests.sync_fixtures import free_port
from tds_pipelines_tests.test_definitions import ENTITY_KEYS
from tds_pipelines_tests.test_e2e_dagster_dev import ASSET_KEYS, graphql, run_job, wait_until

# What `make demo` sees: none of the settings a developer's shell may hold.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TDS_", "ZOHO_", "DAGSTER_"))}


INVOICE_CHECKS = """{ assetNodes(assetKeys: [{path: ["zoho", "invoices"]}]) { assetChecksOrError { ... on AssetChecks
  { checks { name executionForLatestMaterialization { evaluation { success } } } } } } }"""


def start_demo(cwd: Path, ui: int, sim: int, receiver: int, **streams) -> subprocess.Popen:
    command = [sys.executable, "-m", "tds_pipelines.cli", "demo", "--port", str(ui), "--simulator-port", str(sim)]
    command += ["--webhook-port", str(receiver)]
    return subprocess.Popen(command, cwd=cwd, env=CLEAN_ENV, text=True, **streams)


def run_demo_until_it_ends(cwd: Path, ui: int, sim: int, receiver: int, seconds: float) -> tuple[int, str, str]:
    demo = start_demo(cwd, ui, sim, receiver, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = demo.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        demo.send_signal(signal.SIGTERM)  # the demo stops what it started
        out, err = demo.communicate(timeout=90)
        pytest.fail(f"tds demo still running after {seconds:.0f}s; it printed:\n{out}\n{err[-3000:]}")
    return demo.returncode, out, err


@pytest.mark.parametrize(
    ("server", "variable"),
    [("Dagster UI", "PORT"), ("simulator", "SIMULATOR_PORT"), ("webhook receiver", "WEBHOOK_PORT")],
)
def test_demo_refuses_a_taken_port_saying_how_to_pick_another(tmp_path, server, variable):
    ui, sim, receiver = free_port(), free_port(), free_port()
    taken = {"PORT": ui, "SIMULATOR_PORT": sim, "WEBHOOK_PORT": receiver}[variable]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        code, out, err = run_demo_until_it_ends(tmp_path, ui, sim, receiver, 60)
    assert code == 1
    [line] = err.splitlines()
    said = re.fullmatch(
        rf"tds demo: port {taken} \({server}\) is taken; pick another: make demo {variable}=(\d+)", line
    )
    assert said and int(said[1]) not in (ui, sim, receiver), line
    assert "Dagster UI at" not in out


def test_demo_says_so_when_dagster_dies_while_starting(tmp_path):
    dagster_home = tmp_path / ".tds" / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry: [unclosed\n")  # dagster dev cannot load its instance
    code, out, err = run_demo_until_it_ends(tmp_path, free_port(), free_port(), free_port(), 180)
    assert code == 1
    assert "tds demo: the Dagster webserver (dagster dev) exited with code 1 while starting (see above)" in err
    assert "Dagster UI at" not in out


def test_demo_starts_everything_on_the_embedded_default(tmp_path):
    ui, sim, receiver = free_port(), free_port(), free_port()
    announced = tmp_path / "demo.out"
    with announced.open("w") as out:
        demo = start_demo(tmp_path, ui, sim, receiver, stdout=out, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{ui}/server_info", timeout=2).ok, 180, "the demo's UI")
        keys = {AssetKey(node["assetKey"]["path"]) for node in graphql(ui, ASSET_KEYS)["assetNodes"]}
        assert keys == ENTITY_KEYS | {QUEUE_KEY}
        assert run_job(ui, "full_sync") == "SUCCESS"
        with sqlite3.connect(tmp_path / ".tds" / "erp.sqlite") as erp:
            assert erp.execute("SELECT count(*) FROM zoho_invoice_line_items").fetchone()[0] > 0
        assert (tmp_path / ".tds" / "dagster_home" / "dagster.yaml").exists()
        # The commands it printed for a second shell work on the running demo.
        hint = wait_until(lambda: "From a second shell:" in announced.read_text() and announced.read_text(), 30, "hint")
        export, commands = hint.split("From a second shell:\n", 1)[1].splitlines()[:2]
        second = subprocess.run(
            ["bash", "-c", f"{export}\n{commands}"],
            cwd=tmp_path,
            env=CLEAN_ENV,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 0, second.stderr
        assert re.search(r"^(\d+) of \1 entities synced$", second.stdout, re.MULTILINE), second.stdout
        assert re.search(r"^invoices +last sync 20", second.stdout, re.MULTILINE), second.stdout  # `tds status`
        # The webhook it suggests trying: an edit in the simulator reaches the ERP with no run launched by hand.
        lines = hint.split("Try a webhook:", 1)[1].splitlines()[2:4]
        edit = subprocess.run(
            ["bash", "-c", "\n".join(lines)], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert edit.returncode == 0 and "edited in Zoho" in edit.stdout, edit.stdout + edit.stderr

        def edited():
            with sqlite3.connect(tmp_path / ".tds" / "erp.sqlite") as erp:
                query = "SELECT count(*) FROM zoho_invoices WHERE json_extract(raw, '$.reference_number') = ?"
                return erp.execute(query, ("edited in Zoho",)).fetchone()[0] == 1

        wait_until(edited, 120, "the webhook's edit in the demo's ERP")
        # The mismatch it suggests planting turns the invoices' count check red and raises one alert.
        plant = hint.split("Try a mismatch:", 1)[1].splitlines()[3]
        subprocess.run(["bash", "-c", plant], cwd=tmp_path, check=True, timeout=60)
        assert run_job(ui, "statistics_comparison") == "SUCCESS"  # a failed check does not fail its run
        [node] = graphql(ui, INVOICE_CHECKS)["assetNodes"]
        [check] = node["assetChecksOrError"]["checks"]
        assert check["executionForLatestMaterialization"]["evaluation"]["success"] is False
        with sqlite3.connect(tmp_path / ".tds" / "erp.sqlite") as erp:
            opened = erp.execute("SELECT incident FROM tds_alerts WHERE resolved_at IS NULL").fetchall()
        assert opened == [("check:zoho/invoices:count_matches_zoho",)]
    finally:
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=90) == 0
    # Nothing the demo started keeps its ports.
    for port in (ui, sim, receiver):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            raise AssertionError(f"port {port} still answers after the demo stopped")
        except requests.ConnectionError:
            pass
