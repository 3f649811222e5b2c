"""Run history retention: `purge_run_history` deletes the runs that ended before TDS_RUN_HISTORY_DAYS, with
their logs, bounded per run; never a run still going, never a recent one. On the embedded SQLite instance
and on the production instance (dagster-postgres)."""

import shutil
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.storage.runs.schema import RunsTable

from tds_pipelines.definitions import defs
from tds_pipelines.retention import purge_run_history
from tds_pipelines_tests.test_definitions import REPO, dagster_pg_env


@contextmanager
def instance_on(kind: str, request, tmp_path, monkeypatch):
    if kind == "sqlite":
        with dg.instance_for_test() as instance:
            yield instance
        return
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    for name, value in dagster_pg_env(request.getfixturevalue("pg_dagster_url")).items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def add_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, days_ago: float) -> str:
    """A run of `status` last updated `days_ago`, with one event in its log."""
    run = instance.add_run(dg.DagsterRun(job_name="full_sync", status=status))
    instance.report_engine_event("a step of an old run", run)
    when = (datetime.now(UTC) - timedelta(days=days_ago)).replace(tzinfo=None)
    with instance.run_storage.connect() as conn:
        conn.execute(RunsTable.update().where(RunsTable.c.run_id == run.run_id).values(update_timestamp=when))
    return run.run_id


def purge(instance: dg.DagsterInstance, **config) -> dict:
    result = purge_run_history.execute_in_process(
        instance=instance, run_config={"ops": {"delete_old_runs": {"config": config}}}
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {name: value.value for name, value in output.event_specific_data.metadata.items()}


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_runs_that_ended_before_the_retention_are_deleted_with_their_logs_a_bounded_number_a_run(
    kind, request, tmp_path, monkeypatch
):
    monkeypatch.delenv("TDS_RUN_HISTORY_DAYS", raising=False)
    S = dg.DagsterRunStatus
    with instance_on(kind, request, tmp_path, monkeypatch) as instance:
        old = [add_run(instance, status, 100) for status in (S.SUCCESS, S.FAILURE, S.CANCELED)]
        kept = [add_run(instance, S.SUCCESS, 10), add_run(instance, S.STARTED, 100)]

        first = purge(instance, max_runs=2)
        assert first["deleted"] == 2 and first["more_left"] is True
        second = purge(instance)
        assert second["deleted"] == 1 and second["more_left"] is False and second["older_than_days"] == 90

        assert [instance.has_run(run_id) for run_id in old] == [False] * 3
        assert [instance.all_logs(run_id) for run_id in old] == [[]] * 3
        assert all(instance.has_run(run_id) and instance.all_logs(run_id) for run_id in kept)


def test_a_retention_of_zero_keeps_every_run_and_the_purge_is_scheduled_daily(monkeypatch):
    monkeypatch.setenv("TDS_RUN_HISTORY_DAYS", "0")
    with dg.instance_for_test() as instance:
        ancient = add_run(instance, dg.DagsterRunStatus.SUCCESS, 3650)
        assert purge(instance)["deleted"] == 0
        assert instance.has_run(ancient)
    [schedule] = [s for s in defs.schedules if s.name == "daily_run_history_purge"]
    assert schedule.cron_schedule == "30 4 * * *" and schedule.job_name == "purge_run_history"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
