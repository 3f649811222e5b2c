"""Crashes on the deployed shape: PostgreSQL itself stopped at once and started again (a throwaway cluster of
the test's own, never the machine's server), and the code server killed with the run it was executing."""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack

import dagster as dg
import pytest
import requests
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool

from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, sync_queue
from tds_pipelines.outages import database_lost
from tds_pipelines.watchdog import orphans
from tds_pipelines_tests.pg_cluster import throwaway_cluster
from tds_pipelines_tests.sync_fixtures import free_port, fresh_erp, row_count, simulator, zoho_env
from tds_pipelines_tests.test_deployed_shape import deployed_env, start_role, start_roles
from tds_pipelines_tests.test_e2e_dagster_dev import graphql, wait_until
from tds_pipelines_tests.test_webhook_receiver import INVOICE, TOKEN, post, running_receiver

pytestmark = pytest.mark.postgres
SCHEMA = "tds"
INVOICES = 600


def delivery(n: int) -> bytes:
    return json.dumps({"invoice": {**INVOICE, "invoice_id": f"99{n:013d}"}}).encode()


def test_the_receiver_answers_503_while_postgresql_is_down_and_loses_no_webhook():
    with throwaway_cluster() as cluster:
        upgrade(cluster.url, SCHEMA)
        answered: dict[int, int] = {}
        with running_receiver(database_url=cluster.url, schema=SCHEMA, token=TOKEN) as receiver:
            for n in range(5):
                answered[n] = post(receiver, delivery(n)).status_code
            cluster.stop()
            down = [post(receiver, delivery(n)).status_code for n in range(5, 10)]
            health = requests.get(f"{receiver}/health", timeout=30)
            cluster.start()
            # Zoho retries what was refused: each is stored once the database is back (bounded wait).
            deadline = time.monotonic() + 60
            for n in range(5, 10):
                while (status := post(receiver, delivery(n)).status_code) != 200 and time.monotonic() < deadline:
                    time.sleep(0.5)
                answered[n] = status
        engine = create_engine(cluster.url, connect_args={"options": f"-csearch_path={SCHEMA}"})
        with engine.connect() as conn:
            stored = sorted(conn.execute(select(sync_queue.c.zoho_id)).scalars())
        engine.dispose()

    assert set(down) == {503} and health.status_code == 503
    assert set(answered.values()) == {200}
    assert stored == sorted(f"99{n:013d}" for n in range(10))  # every delivery once, none twice


RUNS_OF = """query($job: String!) { runsOrError(filter: {pipelineName: $job})
  { __typename ... on Runs { results { runId status tags { key value } } } } }"""


def runs_of(ui: int, job: str) -> list[dict]:
    return graphql(ui, RUNS_OF, job=job)["runsOrError"]["results"]


def finished_run(ui: int, job: str, run_id: str) -> dict | None:
    """`run_id` if it succeeded, else its retry once that ended (None while either is still going)."""
    runs = {r["runId"]: r for r in runs_of(ui, job)}
    if runs[run_id]["status"] == "SUCCESS":
        return runs[run_id]
    if runs[run_id]["status"] != "FAILURE":
        return None
    retries = [r for r in runs.values() if {"key": "dagster/parent_run_id", "value": run_id} in r["tags"]]
    return retries[0] if retries and retries[0]["status"] in ("SUCCESS", "FAILURE") else None


def invoices_stored(observer) -> dict:
    """The invoices' rows and distinct ids, and whether their line items are exactly those of their raw
    bodies (none missing, none twice)."""
    invoices, lines = entity_tables["invoices"], child_tables_by_name["zoho_invoice_line_items"]
    with observer.connect() as conn:
        rows, distinct = conn.execute(select(func.count(), func.count(func.distinct(invoices.c.zoho_id)))).one()
        duplicated = conn.execute(
            select(lines.c.parent_zoho_id, lines.c.position)
            .group_by(lines.c.parent_zoho_id, lines.c.position)
            .having(func.count() > 1)
        ).all()
        expected = conn.execute(
            text("SELECT coalesce(sum(jsonb_array_length(raw -> 'line_items')), 0) FROM zoho_invoices")
        ).scalar_one()
        stored = conn.execute(select(func.count()).select_from(lines)).scalar_one()
    same = not duplicated and stored == expected
    return {
        "rows": rows,
        "distinct": distinct,
        "lines": "as in raw" if same else f"{stored} of {expected}, {duplicated[:3]}",
    }


def test_a_code_server_killed_mid_sync_fails_its_run_which_is_retried_without_duplicates(
    pg_server_url, pg_dagster_url, tmp_path
):
    erp = fresh_erp(pg_server_url)
    env, ports = deployed_env(pg_server_url, pg_dagster_url, erp.schema, tmp_path / "dagster_home")
    ui = ports["TDS_UI_PORT"]
    invoices = entity_tables["invoices"]
    with simulator(records=10, entity_records={"invoices": INVOICES}) as sim, ExitStack() as roles:
        env |= zoho_env(sim, pg_server_url, erp.schema) | {"TDS_ZOHO_CALLS_PER_MINUTE": "3000"}
        started = start_roles(roles, env, ports)
        run_id = DagsterGraphQLClient("127.0.0.1", port_number=ui).submit_job_execution("full_sync")
        # Mid-sync: some invoices written, far from all (each needs its detail call).
        wait_until(lambda: 0 < row_count(erp.observer, invoices) < INVOICES // 2, 180, "the sync under way")
        os.killpg(started["code-server"].pid, signal.SIGKILL)  # the code server and the run worker it launched
        killed_at = time.monotonic()
        roles.enter_context(start_role("code-server", env))  # restarted, as a supervisor would

        retry = wait_until(lambda: finished_run(ui, "full_sync", run_id), 480, "the killed run's retry finished")
        recovered_seconds = time.monotonic() - killed_at
    assert retry["runId"] != run_id and retry["status"] == "SUCCESS", retry  # failed, and retried to success
    assert invoices_stored(erp.observer) == {"rows": INVOICES, "distinct": INVOICES, "lines": "as in raw"}
    print(f"code server killed mid-sync: run failed and retried to success {recovered_seconds:.0f} s after the kill")


EVENTS = """query($runId: ID!) { logsForRun(runId: $runId) { __typename ... on EventConnection
  { events { __typename } } } }"""


def test_postgresql_killed_mid_sync_and_restarted_the_sync_finishes_once_and_the_receiver_accepts_again(tmp_path):
    """Every role on a cluster of the test's own (Dagster's records and the ERP alike), stopped at once in the
    middle of a full sync and started again: the receiver refuses while it is down, and the sync's step is
    retried once the database is back (or the run is, when its worker died), with no row written twice."""
    with throwaway_cluster() as cluster:
        with create_engine(cluster.url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("CREATE DATABASE dagster"))
        erp = fresh_erp(cluster.url)
        dagster_url = cluster.url.rsplit("/", 1)[0] + "/dagster"
        env, ports = deployed_env(cluster.url, dagster_url, erp.schema, tmp_path / "dagster_home")
        env["TDS_WEBHOOK_TOKEN"] = TOKEN  # the token `post` sends
        ui, receiver = ports["TDS_UI_PORT"], f"http://127.0.0.1:{ports['TDS_WEBHOOK_PORT']}"
        invoices = entity_tables["invoices"]
        with simulator(records=10, entity_records={"invoices": INVOICES}) as sim, ExitStack() as roles:
            env |= zoho_env(sim, cluster.url, erp.schema) | {"TDS_ZOHO_CALLS_PER_MINUTE": "3000"}
            start_roles(roles, env, ports)
            run_id = DagsterGraphQLClient("127.0.0.1", port_number=ui).submit_job_execution("full_sync")
            wait_until(lambda: 0 < row_count(erp.observer, invoices) < INVOICES // 2, 180, "the sync under way")
            cluster.stop()
            stopped_at = time.monotonic()
            refused = post(receiver, delivery(1)).status_code
            cluster.start()
            erp.observer.dispose()  # its pooled connections died with the server
            accepted = wait_until(
                lambda: (status := post(receiver, delivery(1)).status_code) == 200 and status, 60, "the receiver back"
            )
            finished = wait_until(lambda: finished_run(ui, "full_sync", run_id), 480, "the sync finished")
            recovered_seconds = time.monotonic() - stopped_at
            events = wait_until(lambda: graphql(ui, EVENTS, runId=run_id), 60, "the run's events")
        stored = invoices_stored(erp.observer)
        with erp.observer.connect() as conn:
            queued = conn.execute(select(func.count()).select_from(sync_queue)).scalar_one()
        erp.observer.dispose()
    retried_steps = [e for e in events["logsForRun"]["events"] if e["__typename"] == "ExecutionStepUpForRetryEvent"]
    assert refused == 503 and accepted == 200 and queued == 1
    assert finished["status"] == "SUCCESS", finished
    assert finished["runId"] != run_id or retried_steps  # the run retried, or its step was
    # The invoices of the sync, and the one the receiver accepted once the database was back.
    assert stored == {"rows": INVOICES + 1, "distinct": INVOICES + 1, "lines": "as in raw"}
    how = "its step retried" if finished["runId"] == run_id else "the run retried"
    print(f"PostgreSQL killed mid-sync: the sync succeeded ({how}) {recovered_seconds:.0f} s after the kill")


def error_of(engine, *statements: str) -> Exception:
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    except Exception as exc:  # noqa: BLE001 - the error is what is asked for
        return exc
    raise AssertionError(f"{statements} raised nothing")


def test_only_a_lost_database_is_taken_for_an_outage(pg_server_url):
    engine = create_engine(pg_server_url, poolclass=NullPool)
    refused = create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/test", poolclass=NullPool)
    assert database_lost(error_of(refused, "SELECT 1"))
    assert database_lost(error_of(engine, "SELECT pg_terminate_backend(pg_backend_pid())"))  # 57P01
    assert not database_lost(error_of(engine, "SELECT 1 / 0"))
    assert not database_lost(error_of(engine, "SET statement_timeout = 1", "SELECT pg_sleep(1)"))  # canceled
    assert not database_lost(error_of(engine, "SELECT * FROM no_such_table"))
    assert not database_lost(ValueError("a bug"))


def test_the_watchdog_leaves_alone_runs_it_cannot_judge():
    with dg.instance_for_test() as instance:
        down = json.dumps({"host": "127.0.0.1", "port": free_port()})  # a code server restarting
        for run_id, tags in (("k8s-pod", {}), ("server-down", {GRPC_INFO_TAG: down})):
            instance.add_run(
                dg.DagsterRun(job_name="full_sync", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags)
            )
        assert orphans(instance, time.time() + 3600) == set()


QUEUED = 40_000


def queue_products(engine, count: int) -> None:
    """`count` product webhooks queued at once (as the receiver stores them), in one statement."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tds_sync_queue (status, entity, event, zoho_id, payload, body_hash, attempts, "
                "received_at, next_attempt_at) "
                "SELECT 'PENDING', 'products', 'webhook', n::text, jsonb_build_object('item_id', n::text, "
                "'name', 'crash ' || n, 'rate', n % 97, 'last_modified_time', '2026-11-01T10:00:00+0300'), "
                "'crash-' || n, 0, now(), now() FROM generate_series(1, :count) AS n"
            ),
            {"count": count},
        )


def statuses(observer) -> dict[str, int]:
    with observer.connect() as conn:
        return dict(conn.execute(select(sync_queue.c.status, func.count()).group_by(sync_queue.c.status)).all())


def test_the_daemon_and_code_server_killed_mid_drain_lose_no_webhook_and_the_schedules_tick_on(
    pg_server_url, pg_dagster_url, tmp_path
):
    erp = fresh_erp(pg_server_url)
    env, ports = deployed_env(pg_server_url, pg_dagster_url, erp.schema, tmp_path / "dagster_home")
    env["TDS_SCHEDULE_CRONS"] = json.dumps({"auto_heal_every_15_minutes": "* * * * *"})
    ui = ports["TDS_UI_PORT"]
    with ExitStack() as roles:
        started = start_roles(roles, env, ports)
        queue_products(erp.engine, QUEUED)  # the queue sensor launches process_webhook_queue
        wait_until(lambda: 0 < statuses(erp.observer).get("COMPLETED", 0) < QUEUED // 2, 180, "the drain under way")
        for role in ("code-server", "daemon"):  # the drain's worker dies with its code server
            os.killpg(started[role].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        held = statuses(erp.observer).get("PROCESSING", 0)
        for role in ("code-server", "daemon"):
            roles.enter_context(start_role(role, env))
        # The watchdog fails the drain, a scheduled auto_heal (launched after the restart) gives its items
        # back, and the queue sensor drains them.
        wait_until(lambda: statuses(erp.observer) == {"COMPLETED": QUEUED}, 600, "every webhook applied")
        drained_seconds = time.monotonic() - killed_at
        healed = [r for r in runs_of(ui, "auto_heal") if r["status"] == "SUCCESS"]
        drains = runs_of(ui, "process_webhook_queue")
    failed = {r["runId"] for r in drains if r["status"] == "FAILURE"}
    retried = [r for r in drains for t in r["tags"] if t["key"] == "dagster/parent_run_id" and t["value"] in failed]
    products = entity_tables["products"]
    with erp.observer.connect() as conn:
        rows = conn.execute(select(func.count(), func.count(func.distinct(products.c.zoho_id)))).one()
        requeued = conn.execute(
            text("SELECT count(*) FROM tds_sync_queue WHERE error_history::text LIKE '%requeued%'")
        ).scalar_one()
        attempts = conn.execute(select(func.max(sync_queue.c.attempts))).scalar_one()
    assert held > 0 and requeued == held  # what the dead run held came back, once each
    assert tuple(rows) == (QUEUED, QUEUED) and attempts == 0
    assert healed, "no auto_heal run launched by its schedule after the restart"
    assert failed and retried, drains  # the killed drain was marked failed, and retried
    print(f"daemon and code server killed mid-drain ({held} items held): queue drained {drained_seconds:.0f} s later")
