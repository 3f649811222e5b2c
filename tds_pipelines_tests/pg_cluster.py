"""A throwaway PostgreSQL cluster of the test's own (initdb + pg_ctl on a free port, trust auth), so that a
test may stop and restart PostgreSQL without touching the machine's shared server. As root, the cluster runs
as the `postgres` user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tds_pipelines_tests.sync_fixtures import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


class Cluster:
    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"

    def _ctl(self, *args: str) -> None:
        log = self.data.parent / "postgres.log"
        _run([_bin("pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", *args])

    def start(self) -> None:
        self._ctl("-o", f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1", "start")

    def stop(self) -> None:
        """Stop at once, as a crash would (no checkpoint, clients cut off)."""
        self._ctl("-m", "immediate", "stop")


def _run(command: list[str]) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A started cluster in a new folder of the system's temporary directory (the `postgres` user must reach
    it), stopped and removed at the end."""
    if not (_bin("initdb") and _bin("pg_ctl")):
        pytest.skip("initdb and pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix="tds-cluster-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(root / "data", free_port())
    try:
        _run([_bin("initdb"), "-D", str(cluster.data), "-U", "postgres", "--auth=trust", "--no-sync"])
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already, or never started
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
