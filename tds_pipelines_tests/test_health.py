"""Automation and health through Dagster: auto_heal's asset and checks, the statistics comparison's checks,
and the alerts they and the run sensors raise (rows in tds_alerts, posts to a local capture server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select

from tds_pipelines.alerting import classify_failure
from tds_pipelines.definitions import build_defs
from tds_pipelines.erp.queue import COMPLETED, DEAD_LETTER, PENDING, PROCESSING, enqueue_delivery, get_item
from tds_pipelines.erp.tables import alerts, sync_queue
from tds_pipelines.health import QUEUE_KEY
from tds_pipelines.resources import ErpDatabase
from tds_pipelines.zoho.errors import BudgetShareExceeded
from tds_pipelines.zoho.webhooks import parse_delivery
from tds_pipelines_tests.capture import capture_server
from tds_pipelines_tests.sync_fixtures import admin, fresh_erp, simulator, use_env, zoho_env, zoho_record

pytestmark = pytest.mark.postgres
NOW = datetime.now(UTC)


def queue(engine, n: int, received_at: datetime, **status) -> int:
    """A product delivery `n`, queued at `received_at`, then given `status` columns; returns its id."""
    with engine.begin() as conn:
        item_id, _ = enqueue_delivery(
            conn, parse_delivery({"item": {"item_id": f"9{n:05d}", "name": f"p{n}", "rate": 1}}), received_at
        )
        if status:
            conn.execute(sync_queue.update().where(sync_queue.c.id == item_id).values(**status))
    return item_id


def alert_rows(observer) -> list[dict]:
    with observer.connect() as conn:
        return [dict(row) for row in conn.execute(select(alerts).order_by(alerts.c.id)).mappings()]


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_auto_heal_requeues_a_dead_runs_items_leaves_a_live_ones_and_retries_old_dead_letters_once(
    pg_server_url, monkeypatch
):
    engine, observer, schema = fresh_erp(pg_server_url)
    use_env(monkeypatch, {"TDS_DATABASE_URL": pg_server_url, "TDS_DB_SCHEMA": schema})
    monkeypatch.delenv("TDS_ALERT_WEBHOOK_URL", raising=False)
    job = build_defs().resolve_job_def("auto_heal")
    with dg.instance_for_test() as instance:
        for run_id, status in (("dead-run", dg.DagsterRunStatus.FAILURE), ("live-run", dg.DagsterRunStatus.STARTED)):
            instance.add_run(dg.DagsterRun(job_name="process_webhook_queue", run_id=run_id, status=status))
        locked = NOW - timedelta(minutes=5)
        dead = [queue(engine, n, NOW, status=PROCESSING, run_id="dead-run", locked_at=locked) for n in range(3)]
        live = [queue(engine, n, NOW, status=PROCESSING, run_id="live-run", locked_at=locked) for n in range(3, 5)]
        old_letter = queue(engine, 5, NOW - timedelta(hours=30), status=DEAD_LETTER, attempts=5, last_error="boom")
        young_letter = queue(engine, 6, NOW - timedelta(hours=2), status=DEAD_LETTER, attempts=5, last_error="boom")

        first = job.execute_in_process(instance=instance)
        again = job.execute_in_process(instance=instance)

    assert first.success and again.success
    assert [get_item(engine, i).status for i in dead] == [PENDING] * 3
    assert [get_item(engine, i).status for i in live] == [PROCESSING] * 2
    assert get_item(engine, old_letter).status == PENDING and get_item(engine, young_letter).status == DEAD_LETTER
    metadata = first.asset_materializations_for_node("tds__webhook_queue")[0].metadata
    assert (metadata["requeued"].value, metadata["dead_letters_retried"].value) == (3, 1)
    second = again.asset_materializations_for_node("tds__webhook_queue")[0].metadata
    assert (second["requeued"].value, second["dead_letters_retried"].value) == (0, 0)  # once per dead letter
    checks = evaluations(first)
    assert set(checks) == {"oldest_pending_age", "no_dead_letters", "no_stuck_items", "success_rate_24h"}
    assert checks["no_dead_letters"].passed is False and checks["no_dead_letters"].severity.value == "WARN"
    assert checks["no_stuck_items"].passed and checks["oldest_pending_age"].passed
    assert [(a["incident"], a["kind"]) for a in alert_rows(observer)] == [
        (f"check:{QUEUE_KEY.to_user_string()}:no_dead_letters", "check_failed")
    ]


def test_a_stalled_queue_raises_one_alert_posted_once_and_its_recovery_once(pg_server_url, monkeypatch):
    engine, observer, schema = fresh_erp(pg_server_url)
    use_env(monkeypatch, {"TDS_DATABASE_URL": pg_server_url, "TDS_DB_SCHEMA": schema})
    job = build_defs().resolve_job_def("auto_heal")
    waiting = queue(engine, 1, NOW - timedelta(hours=2))
    with capture_server(path="/slack/T000/B000/s3cr3t") as capture, dg.instance_for_test() as instance:
        monkeypatch.setenv("TDS_ALERT_WEBHOOK_URL", capture.url)
        stalled = [job.execute_in_process(instance=instance) for _ in range(2)]
        with engine.begin() as conn:  # the queue drains
            conn.execute(sync_queue.update().where(sync_queue.c.id == waiting).values(status=COMPLETED))
        recovered = job.execute_in_process(instance=instance)
        bodies = [json.loads(body)["text"] for body in capture.bodies()]

    check = evaluations(stalled[0])["oldest_pending_age"]
    assert check.passed is False and check.severity.value == "ERROR"
    assert evaluations(recovered)["oldest_pending_age"].passed
    (row,) = alert_rows(observer)
    assert row["kind"] == "queue_stalled" and row["occurrences"] == 2 and row["resolved_at"] is not None
    assert row["notified_at"] is not None and row["recovery_notified_at"] is not None
    assert len(bodies) == 2, bodies  # one when raised, one when it recovered: no repeat for the second run
    assert "queue_stalled" in bodies[0] and "oldest_pending_age" in bodies[0]
    assert "recovered" in bodies[1].lower()


def test_a_count_mismatch_made_in_zoho_fails_its_check_with_the_ids_and_raises_one_alert(pg_server_url, monkeypatch):
    engine, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=12) as sim, capture_server() as capture, dg.instance_for_test() as instance:
        use_env(monkeypatch, zoho_env(sim, pg_server_url, schema) | {"TDS_ALERT_WEBHOOK_URL": capture.url})
        defs = build_defs()
        assert defs.resolve_job_def("full_sync").execute_in_process(instance=instance).success
        matching = defs.resolve_job_def("statistics_comparison").execute_in_process(instance=instance)
        gone = admin(sim, "GET", "invoices")["ids"][0]
        template = zoho_record(sim, "invoices", gone)
        for new_id in ("987000000000001", "987000000000002"):  # a creation and a deletion alone cancel out
            admin(sim, "PUT", f"invoices/{new_id}", {**template, "invoice_id": new_id, "invoice_number": new_id})
        admin(sim, "DELETE", f"invoices/{gone}")
        mismatched = defs.resolve_job_def("statistics_comparison").execute_in_process(instance=instance)
        posted = [json.loads(body)["text"] for body in capture.bodies()]

    assert matching.success and all(e.passed for e in matching.get_asset_check_evaluations())
    assert len(matching.get_asset_check_evaluations()) == 12
    failed = [e for e in mismatched.get_asset_check_evaluations() if not e.passed]
    assert [e.asset_key.path[-1] for e in failed] == ["invoices"]
    metadata = failed[0].metadata
    assert metadata["missing_in_erp"].value == "987000000000001, 987000000000002"
    assert metadata["missing_in_zoho"].value == gone
    assert (metadata["zoho_count"].value, metadata["erp_count"].value) == (13, 12)
    (row,) = alert_rows(observer)
    assert row["incident"] == "check:zoho/invoices:count_matches_zoho" and row["resolved_at"] is None
    assert len(posted) == 1 and "zoho/invoices" in posted[0]


def test_a_refused_refresh_token_fails_the_run_and_the_failure_sensor_says_so(pg_server_url, monkeypatch):
    engine, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=3) as sim, dg.instance_for_test() as instance:
        use_env(monkeypatch, zoho_env(sim, pg_server_url, schema) | {"ZOHO_REFRESH_TOKEN": "revoked-token"})
        monkeypatch.delenv("TDS_ALERT_WEBHOOK_URL", raising=False)
        defs = build_defs()
        result = defs.resolve_job_def("stock_sync").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.PIPELINE_FAILURE)
        sensor = next(s for s in defs.sensors if s.name == "tds_run_failure_alerts")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            resources={"erp": ErpDatabase(database_url=pg_server_url, db_schema=schema)},
        ).for_run_failure()
        sensor(context)
        sensor(context)  # the same incident again: counted, not a second alert

    (row,) = alert_rows(observer)
    assert (row["kind"], row["incident"], row["severity"], row["occurrences"]) == (
        "token_refused",
        "zoho:refresh_token",
        "ERROR",
        2,
    )
    assert "revoked-token" not in json.dumps(row, default=str)


def test_a_failed_run_is_told_apart_by_its_cause():
    quota = BudgetShareExceeded("incremental_sync", 150, 150, 1000, 0.15, 1000, 0)
    assert classify_failure("incremental_sync", f"invoices skipped: {quota}") == (
        "quota_skip",
        "quota:incremental_sync",
        "WARN",
    )
    refused = "zoho__products: ZohoAuthError: Zoho Accounts refused the token refresh (invalid_code)"
    assert classify_failure("full_sync", refused) == ("token_refused", "zoho:refresh_token", "ERROR")
    assert classify_failure("full_sync", "zoho__products: OperationalError: could not connect") == (
        "run_failed",
        "run:full_sync",
        "ERROR",
    )
