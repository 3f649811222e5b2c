"""The Dagster code location: what it defines, and the jobs run for real against the simulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tds_pipelines.definitions import build_defs, defs
from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.health import QUEUE_KEY
from tds_pipelines.partitions import document_months
from tds_pipelines.run_limits import JOB_TAG, MAX_RUNTIME, MAX_RUNTIME_TAG, ZOHO_TAG
from tds_pipelines_tests.sync_fixtures import fresh_erp, row_count, simulator, use_env, zoho_env

REPO = Path(__file__).resolve().parents[1]
ENTITY_KEYS = {dg.AssetKey(spec.asset_key) for spec in ENTITIES} | {dg.AssetKey(["zoho", "item_stock"])}


def test_every_entity_is_an_asset_and_the_jobs_and_schedules_exist():
    graph = defs.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == ENTITY_KEYS | {QUEUE_KEY}
    jobs = ("full_sync", "incremental_sync", "stock_sync", "auto_heal", "statistics_comparison")
    queue_jobs = ("process_webhook_queue", "replay_dead_letters", "process_single_webhook")
    for name in (*jobs, *queue_jobs, "purge_run_history"):
        assert defs.resolve_job_def(name).executor_def.name == "in_process"
    partitioned = {key.path[-1] for key in ENTITY_KEYS if graph.get(key).partitions_def is not None}
    assert partitioned == {"invoices", "sales_orders", "customer_payments", "bills", "credit_notes"}
    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {
        "daily_full_sync",
        "hourly_incremental_sync",
        "stock_sync_every_15_minutes",
        "auto_heal_every_15_minutes",
        "daily_statistics_comparison",
        "daily_run_history_purge",
    }
    for schedule in schedules.values():
        assert schedule.execution_timezone == os.environ.get("TDS_TIMEZONE", "Asia/Baghdad")
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedules["daily_full_sync"].cron_schedule == "0 2 * * *"
    assert schedules["daily_statistics_comparison"].cron_schedule == "0 3 * * *"
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {
        "zoho_webhook_queue_sensor",
        "tds_run_failure_alerts",
        "tds_run_recovery_alerts",
        "tds_alert_notifier",
        "tds_run_watchdog",
    }
    assert all(sensor.default_status == dg.DefaultSensorStatus.RUNNING for sensor in sensors.values())
    sensor = sensors["zoho_webhook_queue_sensor"]
    assert sensor.job_name == "process_webhook_queue"
    assert sensor.minimum_interval_seconds == int(os.environ.get("TDS_WEBHOOK_SENSOR_SECONDS", 10))


def test_every_entity_has_its_count_check_and_only_statistics_comparison_runs_them():
    checks = {key for key in defs.resolve_asset_graph().asset_check_keys if key.name == "count_matches_zoho"}
    assert {key.asset_key for key in checks} == {dg.AssetKey(spec.asset_key) for spec in ENTITIES}
    for name in ("full_sync", "incremental_sync", "stock_sync"):
        assert not defs.resolve_job_def(name).asset_layer.asset_graph.asset_check_keys & checks, name
    comparison = defs.resolve_job_def("statistics_comparison")
    assert comparison.asset_layer.asset_graph.asset_check_keys >= checks
    freshness = {key: defs.resolve_asset_graph().get(key).freshness_policy for key in ENTITY_KEYS}
    assert all(policy is not None for policy in freshness.values())


def dagster_pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables the production dagster.yaml reads, for the database at `url`."""
    parsed = make_url(url)
    return {
        "DAGSTER_PG_HOST": parsed.host,
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USERNAME": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database,
    }


def test_the_production_instance_config_loads_with_its_run_limits(pg_dagster_url, tmp_path, monkeypatch):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    for name, value in dagster_pg_env(pg_dagster_url).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        queue = instance.get_concurrency_config().run_queue_config
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
        assert queue.max_concurrent_runs == 6
        assert limits["tds/zoho"]["limit"] == 2 and limits["tds/job"]["value"] == {"applyLimitPerUniqueValue": True}
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled and instance.run_monitoring_start_timeout_seconds == 300


def test_every_job_carries_the_tags_the_run_queue_limits_read():
    zoho_jobs = {"full_sync", "incremental_sync", "stock_sync", "statistics_comparison"}
    for name in MAX_RUNTIME:
        tags = defs.resolve_job_def(name).tags
        assert tags[JOB_TAG] == name and int(tags[MAX_RUNTIME_TAG]) == MAX_RUNTIME[name], name
        assert (tags.get(ZOHO_TAG) == "true") == (name in zoho_jobs), name


def materializations(instance: dg.DagsterInstance, key: list[str]) -> list:
    records = instance.fetch_materializations(dg.AssetKey(key), limit=1000).records
    return [r.asset_materialization for r in records]


def test_full_sync_job_in_process_records_metadata_and_partitions(pg_server_url, monkeypatch):
    _, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=25) as sim:
        use_env(monkeypatch, zoho_env(sim, pg_server_url, schema))
        instance = dg.DagsterInstance.ephemeral()
        result = build_defs().resolve_job_def("full_sync").execute_in_process(instance=instance)
    assert result.success
    for spec in ENTITIES:
        assert row_count(observer, entity_tables[spec.name]) > 0, spec.name
        unpartitioned = [m for m in materializations(instance, spec.asset_key) if m.partition is None]
        assert len(unpartitioned) == 1
        metadata = unpartitioned[0].metadata
        figures = ("fetched", "inserted", "updated", "unchanged", "tombstoned", "api_calls", "seconds")
        for figure in (*figures, "retries", "token_refreshes", "budget_wait_seconds"):
            assert figure in metadata, (spec.name, figure)
        assert metadata["inserted"].value == row_count(observer, entity_tables[spec.name])
    # A complete full listing puts every document month in sync, empty months included: none shows missing.
    invoices = entity_tables["invoices"]
    with observer.connect() as conn:
        dates = set(conn.execute(select(invoices.c.date)).scalars())
    months = {d.replace(day=1).isoformat() for d in dates if d.year >= 2020}
    every_month = set(document_months.get_partition_keys())
    assert months < every_month
    for spec in ENTITIES:
        if spec.partitioned:
            assert instance.get_materialized_partitions(dg.AssetKey(spec.asset_key)) == every_month, spec.name


def test_one_partition_run_syncs_that_month_only(pg_server_url, monkeypatch):
    _, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=40) as sim:
        use_env(monkeypatch, zoho_env(sim, pg_server_url, schema))
        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize(
            [asset for asset in build_defs().assets if dg.AssetKey(["zoho", "invoices"]) in asset.keys],
            partition_key="2023-03-01",
            instance=instance,
            resources=build_defs().resources,
        )
    assert result.success
    with observer.connect() as conn:
        dates = list(conn.execute(select(entity_tables["invoices"].c.date)).scalars())
    assert dates and all(d.isoformat().startswith("2023-03") for d in dates)
    assert instance.get_materialized_partitions(dg.AssetKey(["zoho", "invoices"])) == {"2023-03-01"}
    [record] = materializations(instance, ["zoho", "invoices"])
    assert record.metadata["scope"].value == "window 2023-03-01..2023-03-31"


def test_a_sync_out_of_budget_fails_its_step_and_is_not_materialized(pg_server_url, monkeypatch):
    _, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=40) as sim:
        env = zoho_env(sim, pg_server_url, schema)
        env |= {"TDS_ZOHO_DAILY_LIMIT": "10", "TDS_ZOHO_API_SHARES": '{"incremental_sync": 0.2, "other": 0.8}'}
        use_env(monkeypatch, env)
        instance = dg.DagsterInstance.ephemeral()
        result = (
            build_defs().resolve_job_def("incremental_sync").execute_in_process(instance=instance, raise_on_error=False)
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and "skipped" in failures[0].event_specific_data.error.message
    assert "incremental_sync" in failures[0].event_specific_data.error.message
    materialized = [spec.name for spec in ENTITIES if materializations(instance, spec.asset_key)]
    assert len(materialized) < len(ENTITIES)
    for spec in ENTITIES:
        for record in materializations(instance, spec.asset_key):
            assert record.metadata["complete"].value is True, spec.name


def test_partition_range_backfill_runs_as_one_run(pg_server_url, monkeypatch):
    _, observer, schema = fresh_erp(pg_server_url)
    with simulator(records=40) as sim:
        use_env(monkeypatch, zoho_env(sim, pg_server_url, schema))
        instance = dg.DagsterInstance.ephemeral()
        job = dg.define_asset_job("invoices_backfill", selection=[dg.AssetKey(["zoho", "invoices"])])
        backfill_defs = dg.Definitions.merge(build_defs(), dg.Definitions(jobs=[job]))
        keys = ["2023-01-01", "2023-06-01"]
        result = backfill_defs.resolve_job_def("invoices_backfill").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[1],
            },
        )
    assert result.success
    invoices = entity_tables["invoices"]
    with observer.connect() as conn:
        dates = list(conn.execute(select(invoices.c.date)).scalars())
    assert dates and all("2023-01-01" <= d.isoformat() <= "2023-06-30" for d in dates)
    materialized = instance.get_materialized_partitions(dg.AssetKey(["zoho", "invoices"]))
    assert materialized == {f"2023-{m:02d}-01" for m in range(1, 7)}


@pytest.mark.parametrize("instance_kind", ["sqlite", "postgres"])
def test_dagster_job_execute_full_sync_from_the_shell(pg_server_url, tmp_path, instance_kind, request):
    """`dagster job execute -m tds_pipelines.definitions -j full_sync` on both Dagster instance kinds."""
    _, observer, schema = fresh_erp(pg_server_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = dict(os.environ)
    if instance_kind == "postgres":
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the production instance config
        env |= dagster_pg_env(request.getfixturevalue("pg_dagster_url"))
    else:
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with simulator(records=15) as sim:
        env |= zoho_env(sim, pg_server_url, schema) | {"DAGSTER_HOME": str(home)}
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "dagster",
                "job",
                "execute",
                "-m",
                "tds_pipelines.definitions",
                "-j",
                "full_sync",
            ],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "RUN_SUCCESS" in completed.stdout + completed.stderr
    for spec in ENTITIES:
        assert row_count(observer, entity_tables[spec.name]) > 0, spec.name
    assert "sim-secret" not in completed.stdout + completed.stderr
