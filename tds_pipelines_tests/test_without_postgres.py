"""Without PostgreSQL, its tests are skipped with the reason; under CI=true the run fails instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
def test_needs_postgres(pg_server_url):
    assert pg_server_url
"""


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_probe.py"
    test_file.write_text(PROBE)
    env = dict(os.environ) | {
        "TDS_TEST_PG_ADMIN_URL": "postgresql+psycopg2://postgres@127.0.0.1:1/postgres",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),  # the test package is not installed
    }
    env.pop("CI", None)
    if ci:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "tds_pipelines_tests.conftest"]
        + [str(test_file)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_postgres_is_a_skip_with_its_reason(tmp_path):
    done = run_probe(tmp_path, ci=None)
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout and "PostgreSQL not reachable at 127.0.0.1:1" in done.stdout


def test_missing_postgres_fails_under_ci(tmp_path):
    done = run_probe(tmp_path, ci="true")
    assert done.returncode != 0
    assert "CI=true requires PostgreSQL" in done.stdout


def test_tds_on_an_unreachable_postgres_says_so_in_one_line():
    url = "postgresql://erp:pw-never-shown@127.0.0.1:1/erp"
    done = subprocess.run(
        [sys.executable, "-m", "tds_pipelines.cli", "status"],
        env=dict(os.environ) | {"TDS_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        "tds: cannot open the ERP database postgresql://erp:***@127.0.0.1:1/erp (TDS_DATABASE_URL): "
    )
    assert "Connection refused" in line and "pw-never-shown" not in line
