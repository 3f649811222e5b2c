"""docs/operations.md is true: its roles are the commands `tds roles` prints, and its first deployment, rehearsed
by deploy/rehearse.sh as a newcomer would run it (fresh databases on the machine's PostgreSQL, the simulator for
Zoho), brings up the four roles with every schedule running, a full sync fills the ERP, and an edit made in
"Zoho" reaches the ERP through the receiver by itself."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.roles import ROLES
from tds_pipelines_tests.sync_fixtures import admin, free_port
from tds_pipelines_tests.test_deployed_shape import REPO, loaded_locations
from tds_pipelines_tests.test_e2e_dagster_dev import SCHEDULES, graphql, process_group, run_job, wait_until

MANUAL = REPO / "docs" / "operations.md"
RECORDS = 25  # deploy/rehearse.sh's --records


def test_the_manuals_roles_are_the_commands_tds_roles_prints():
    rows = re.findall(r"^\| ([a-z-]+) \| `([^`]+)` \|", MANUAL.read_text(), re.MULTILINE)
    assert rows == list(ROLES)


@pytest.fixture
def databases(pg_server_url):
    """Two fresh database names on the machine's server (the script creates them), dropped at the end."""
    names = [f"tds_rehearsal_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("erp", "dagster")]
    yield names
    server = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.mark.postgres
def test_the_rehearsal_script_brings_up_the_deployed_shape_a_newcomer_can_sync_with(pg_server_url, databases, tmp_path):
    if not (shutil.which("psql") and shutil.which("createdb")):
        pytest.skip("the script creates its databases with psql and createdb, which are not installed")
    erp_db, dagster_db = databases
    server = make_url(pg_server_url)
    ports = {name: free_port() for name in ("TDS_CODE_SERVER_PORT", "TDS_UI_PORT", "TDS_WEBHOOK_PORT")}
    ports["TDS_SIMULATOR_PORT"] = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TDS_", "DAGSTER_", "ZOHO_", "PG"))}
    env |= {name: str(port) for name, port in ports.items()} | {"DAGSTER_HOME": str(tmp_path / "home")}
    env |= {"PGHOST": server.host, "PGPORT": str(server.port or 5432), "PGUSER": server.username or "postgres"}
    env |= {"TDS_REHEARSAL_ERP_DB": erp_db, "DAGSTER_PG_DB": dagster_db}
    ui = ports["TDS_UI_PORT"]
    with process_group(["bash", str(REPO / "deploy" / "rehearse.sh")], env) as script:
        wait_until(lambda: script.poll() is None and loaded_locations(ui), 240, "the UI with the code location")
        states = graphql(ui, SCHEDULES % "tds_pipelines")["schedulesOrError"]["results"]
        assert states and {s["scheduleState"]["status"] for s in states} == {"RUNNING"}
        assert run_job(ui, "full_sync") == "SUCCESS"

        erp = create_engine(
            server.set(database=erp_db).render_as_string(hide_password=False),
            connect_args={"options": "-csearch_path=tds"},
        )
        products = entity_tables["products"]
        with erp.connect() as conn:
            assert conn.execute(select(func.count()).select_from(products)).scalar_one() == RECORDS

        sim = SimpleNamespace(url=f"http://127.0.0.1:{ports['TDS_SIMULATOR_PORT']}")
        item_id = sorted(admin(sim, "GET", "products")["ids"])[0]
        admin(sim, "PATCH", f"products/{item_id}", {"name": "renamed in Zoho"})

        def renamed() -> bool:
            with erp.connect() as conn:
                row = conn.execute(select(products.c.raw).where(products.c.zoho_id == item_id)).scalar_one()
            return row["name"] == "renamed in Zoho"

        wait_until(renamed, 180, "the edit, through the receiver and the queue sensor, in the ERP")
        erp.dispose()
