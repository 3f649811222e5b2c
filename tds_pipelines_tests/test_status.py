"""One picture of TDS's health: `collect_status` on a planted PostgreSQL schema, and the same figures from
`tds status`, ``GET /health`` and the old service's monitoring routes, times in TDS_TIMEZONE with its offset."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import requests
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)

from tds_pipelines.cli import main
from tds_pipelines.definitions import defs
from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.db import utcnow
from tds_pipelines.erp.tables import alerts, sync_queue, sync_state
from tds_pipelines.status import collect_status, monitoring_health
from tds_pipelines_tests.sync_fixtures import fresh_erp
from tds_pipelines_tests.test_webhook_receiver import TIMEOUT, TOKEN, running_receiver

pytestmark = pytest.mark.postgres

SCHEDULES = {
    "daily_full_sync",
    "hourly_incremental_sync",
    "stock_sync_every_15_minutes",
    "auto_heal_every_15_minutes",
    "daily_statistics_comparison",
    "daily_run_history_purge",
}
SYNCED_AT = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
FULL_AT = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
STOCK_AT = datetime(2026, 11, 28, 2, 15, 30, tzinfo=UTC)
ALERT_AT = datetime(2026, 11, 28, 1, 30, tzinfo=UTC)
# The same instants as each zone writes them.
LOCAL = {
    "Asia/Baghdad": {
        SYNCED_AT: "2026-11-28T05:00:00+03:00",
        FULL_AT: "2026-11-28T02:00:00+03:00",
        STOCK_AT: "2026-11-28T05:15:30+03:00",
        ALERT_AT: "2026-11-28T04:30:00+03:00",
    },
    "America/New_York": {
        SYNCED_AT: "2026-11-27T21:00:00-05:00",
        FULL_AT: "2026-11-27T18:00:00-05:00",
        STOCK_AT: "2026-11-27T21:15:30-05:00",
        ALERT_AT: "2026-11-27T20:30:00-05:00",
    },
}
NO_SYNC = {"last_sync_at": None, "last_full_sync_at": None}
M, H = timedelta(minutes=1), timedelta(hours=1)


@pytest.fixture
def store(pg_server_url):
    erp = fresh_erp(pg_server_url)
    yield erp
    erp.observer.dispose()


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """The defaults of every setting the figures depend on, and no Dagster instance unless a test makes one."""
    monkeypatch.setenv("TDS_TIMEZONE", "Asia/Baghdad")
    for name in (
        "DAGSTER_HOME",
        "TDS_HEAL_STUCK_MINUTES",
        "TDS_QUEUE_PENDING_WARN_SECONDS",
        "TDS_QUEUE_PENDING_ERROR_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


def failure(status: str, ago: timedelta, now: datetime) -> dict:
    return {"at": (now - ago).isoformat(), "attempts": 1, "error": "Zoho said 500", "status": status}


def plant_queue(observer, now: datetime) -> None:
    """Two PENDING (one due 10 minutes ago), one PROCESSING stuck for 2 hours, two COMPLETED in the last day
    (one after a failure), one FAILED waiting for its retry, one DEAD_LETTER: 4 failed attempts, 2 successes."""
    rows = [
        {"status": "PENDING", "next_attempt_at": now - 10 * M},
        {"status": "PENDING", "next_attempt_at": now + 5 * M},
        {"status": "PROCESSING", "locked_at": now - 2 * H, "run_id": "r1"},
        {"status": "COMPLETED", "completed_at": now - H},
        {"status": "COMPLETED", "completed_at": now - 2 * H, "error_history": [failure("FAILED", 3 * H, now)]},
        {"status": "FAILED", "next_attempt_at": now + 10 * M, "error_history": [failure("FAILED", 30 * M, now)]},
        {"status": "DEAD_LETTER", "error_history": [failure("FAILED", 5 * H, now), failure("DEAD_LETTER", 4 * H, now)]},
    ]
    with observer.begin() as conn:
        conn.execute(
            sync_queue.insert(),
            [
                {
                    "next_attempt_at": None,
                    "locked_at": None,
                    "run_id": None,
                    "completed_at": None,
                    "error_history": None,
                }
                | row
                | {"attempts": 1, "received_at": now - 10 * M}
                for row in rows
            ],
        )


def plant_syncs_and_alerts(observer) -> None:
    """invoices synced (last full sync earlier), item_stock synced, never a full; one open alert seen twice,
    one resolved (not shown)."""
    with observer.begin() as conn:
        conn.execute(
            sync_state.insert(),
            [
                {
                    "entity": "invoices",
                    "last_sync_at": SYNCED_AT,
                    "last_full_sync_at": FULL_AT,
                    "updated_at": SYNCED_AT,
                },
                {"entity": "item_stock", "last_sync_at": STOCK_AT, "last_full_sync_at": None, "updated_at": STOCK_AT},
            ],
        )
        common = {
            "kind": "check_failed",
            "severity": "ERROR",
            "entity": "invoices",
            "created_at": ALERT_AT,
            "last_seen_at": ALERT_AT + H,
            "resolved_at": None,
        }
        conn.execute(
            alerts.insert(),
            [
                common
                | {
                    "incident": "check:zoho/invoices:count_matches_zoho",
                    "message": "the ERP has 3 invoices fewer than Zoho",
                    "occurrences": 2,
                },
                common
                | {"incident": "check:old", "message": "gone", "occurrences": 1, "resolved_at": ALERT_AT + 2 * H},
            ],
        )


def expected_status(zone: str) -> dict:
    local = LOCAL[zone]
    entities = {spec.name: NO_SYNC for spec in ENTITIES} | {"item_stock": NO_SYNC}
    entities["invoices"] = {"last_sync_at": local[SYNCED_AT], "last_full_sync_at": local[FULL_AT]}
    entities["item_stock"] = {"last_sync_at": local[STOCK_AT], "last_full_sync_at": None}
    return {
        "queue": {"PENDING": 2, "PROCESSING": 1, "COMPLETED": 2, "FAILED": 1, "DEAD_LETTER": 1},
        "oldest_pending_age_seconds": 600.0,
        "dead_letters": 1,
        "stuck": 1,
        "success_rate_24h": 0.3333,
        "entities": entities,
        "open_alerts": [
            {
                "incident": "check:zoho/invoices:count_matches_zoho",
                "kind": "check_failed",
                "severity": "ERROR",
                "entity": "invoices",
                "message": "the ERP has 3 invoices fewer than Zoho",
                "since": local[ALERT_AT],
                "occurrences": 2,
            }
        ],
    }


def aged(report: dict, planted_at: datetime) -> dict:
    """`report` with its oldest pending age as it was at `planted_at` (the clock has moved on since)."""
    age = report["oldest_pending_age_seconds"]
    assert 600 <= age <= 600 + (utcnow() - planted_at).total_seconds() + 1
    return report | {"oldest_pending_age_seconds": 600.0}


# ---- tds status, GET /health ------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Asia/Baghdad", "America/New_York"])
def test_status_cli_and_health_give_the_same_picture_in_tds_timezone(zone, store, pg_server_url, monkeypatch, capsys):
    monkeypatch.setenv("TDS_TIMEZONE", zone)
    now = utcnow()
    plant_queue(store.observer, now)
    plant_syncs_and_alerts(store.observer)
    expected = expected_status(zone)

    assert collect_status(store.engine, now=now) == expected
    assert list(collect_status(store.engine, now=now)["entities"]) == [*(spec.name for spec in ENTITIES), "item_stock"]

    monkeypatch.setenv("TDS_DATABASE_URL", pg_server_url)
    monkeypatch.setenv("TDS_DB_SCHEMA", store.schema)
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    assert aged(json.loads(capsys.readouterr().out), now) == expected

    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        health = requests.get(f"{url}/health", timeout=TIMEOUT)
    assert health.status_code == 200
    assert aged(health.json(), now) == {"status": "ok", **expected}


def test_status_prints_one_line_per_entity_with_offsets_and_the_open_alerts(store, pg_server_url, monkeypatch, capsys):
    plant_queue(store.observer, utcnow())
    plant_syncs_and_alerts(store.observer)
    monkeypatch.setenv("TDS_DATABASE_URL", pg_server_url)
    monkeypatch.setenv("TDS_DB_SCHEMA", store.schema)
    capsys.readouterr()

    assert main(["status"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "queue: PENDING 2, PROCESSING 1, COMPLETED 2, FAILED 1, DEAD_LETTER 1"
    assert lines[1].startswith("oldest pending: 6") and lines[1].endswith(
        "dead letters: 1, stuck: 1, success rate 24 h: 33.33%"
    )
    by_entity = {line.split()[0]: line for line in lines[2 : 2 + len(ENTITIES) + 1]}
    assert set(by_entity) == {*(spec.name for spec in ENTITIES), "item_stock"}
    assert by_entity["invoices"].split()[1:] == [
        "last",
        "sync",
        "2026-11-28T05:00:00+03:00",
        "last",
        "full",
        "2026-11-28T02:00:00+03:00",
    ]
    assert by_entity["customers"].split()[1:] == ["last", "sync", "-", "last", "full", "-"]
    assert lines[2 + len(ENTITIES) + 1 :] == [
        "open alerts: 1",
        "  ERROR check:zoho/invoices:count_matches_zoho  since 2026-11-28T04:30:00+03:00 (2x): "
        "the ERP has 3 invoices fewer than Zoho",
    ]


# ---- /api/tds/monitoring/health ---------------------------------------------------------------------------


def test_monitoring_health_is_the_verdict_of_the_queue_checks(store):
    now = utcnow()
    empty = monitoring_health(store.engine, now=now)
    assert (empty["status"], empty["total"], empty["failing_checks"]) == ("healthy", 0, [])

    with store.observer.begin() as conn:  # a dead letter alone: a WARN check fails
        conn.execute(sync_queue.insert().values(status="DEAD_LETTER", attempts=1, received_at=now - H))
    degraded = monitoring_health(store.engine, now=now)
    assert degraded["status"] == "degraded"
    assert [(check["check"], check["severity"]) for check in degraded["failing_checks"]] == [
        ("no_dead_letters", "WARN")
    ]

    with store.observer.begin() as conn:  # waiting longer than TDS_QUEUE_PENDING_ERROR_SECONDS (1 hour)
        conn.execute(
            sync_queue.insert().values(
                status="PENDING", attempts=0, received_at=now - 2 * H, next_attempt_at=now - 2 * H
            )
        )
    unhealthy = monitoring_health(store.engine, now=now)
    assert unhealthy["status"] == "unhealthy"
    assert [(check["check"], check["severity"]) for check in unhealthy["failing_checks"]] == [
        ("oldest_pending_age", "ERROR"),
        ("no_dead_letters", "WARN"),
    ]


def test_monitoring_health_route_answers_the_queue_statistics(store, pg_server_url):
    now = utcnow()
    plant_queue(store.observer, now)

    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        answer = requests.get(f"{url}/api/tds/monitoring/health", timeout=TIMEOUT)

    assert answer.status_code == 200
    figures = aged(answer.json(), now)
    checked_at = datetime.fromisoformat(figures.pop("checked_at"))
    assert checked_at.utcoffset() == timedelta(hours=3) and now.replace(microsecond=0) <= checked_at <= utcnow()
    expected = {
        key: value for key, value in expected_status("Asia/Baghdad").items() if key not in ("entities", "open_alerts")
    }
    failing = figures.pop("failing_checks")
    assert figures == {"status": "unhealthy", "total": 7, **expected}
    assert [(check["check"], check["severity"]) for check in failing] == [
        ("no_dead_letters", "WARN"),
        ("no_stuck_items", "ERROR"),
        ("success_rate_24h", "ERROR"),
    ]
    assert all(check["description"] for check in failing)


# ---- /api/tds/monitoring/scheduler/jobs -------------------------------------------------------------------


def scheduler_jobs_over_http(store, pg_server_url) -> dict:
    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        answer = requests.get(f"{url}/api/tds/monitoring/scheduler/jobs", timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_next_tick(job: dict, after: datetime) -> None:
    """A running schedule's next tick: after `after`, within a day, on its cron in its own zone."""
    tick = datetime.fromisoformat(job["next_tick_at"])
    assert tick.utcoffset() == timedelta(hours=3)  # TDS_TIMEZONE
    assert after < tick <= after + timedelta(days=1)
    minute, hour = job["cron"].split()[:2]
    in_zone = tick.astimezone(ZoneInfo(job["timezone"]))
    assert in_zone.second == 0
    if minute.startswith("*/"):
        assert in_zone.minute % int(minute.removeprefix("*/")) == 0
    else:
        assert in_zone.minute == int(minute)
    if hour != "*":
        assert in_zone.hour == int(hour)


def test_scheduler_jobs_without_an_instance_are_the_definitions_defaults(store, pg_server_url):
    before = utcnow()
    report = scheduler_jobs_over_http(store, pg_server_url)

    assert report["instance"] is None
    jobs = {job["name"]: job for job in report["jobs"]}
    assert [job["name"] for job in report["jobs"]] == [d.name for d in (*defs.schedules, *defs.sensors)]
    assert {name for name, job in jobs.items() if job["type"] == "schedule"} == SCHEDULES
    for schedule in defs.schedules:
        job = jobs[schedule.name]
        assert (job["state"], job["cron"], job["timezone"]) == (
            schedule.default_status.value,
            schedule.cron_schedule,
            schedule.execution_timezone,
        )
        assert (job["last_tick_at"], job["last_tick_status"]) == (None, None)
        assert_next_tick(job, before)
    for sensor in defs.sensors:
        assert jobs[sensor.name] == {
            "name": sensor.name,
            "type": "sensor",
            "state": sensor.default_status.value,
            "cron": None,
            "timezone": None,
            "last_tick_at": None,
            "last_tick_status": None,
            "next_tick_at": None,
        }


def test_scheduler_jobs_show_the_instances_stored_states_and_ticks(store, pg_server_url, tmp_path, monkeypatch):
    (tmp_path / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    sensor = defs.sensors[0].name
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("tds_pipelines.definitions"), "__repository__")
    ticked_at = datetime(2026, 11, 28, 4, 0, tzinfo=UTC).timestamp()

    crons = {schedule.name: schedule.cron_schedule for schedule in defs.schedules}

    def stored(name: str, status: InstigatorStatus) -> InstigatorState:
        if name == sensor:
            kind, data = InstigatorType.SENSOR, SensorInstigatorData()
        else:
            kind, data = InstigatorType.SCHEDULE, ScheduleInstigatorData(crons[name])
        return instance.add_instigator_state(
            InstigatorState(repository.get_instigator_origin(name), kind, status, data)
        )

    with dg.DagsterInstance.get() as instance:
        stored("daily_full_sync", InstigatorStatus.STOPPED)
        hourly = stored("hourly_incremental_sync", InstigatorStatus.DECLARED_IN_CODE)
        watcher = stored(sensor, InstigatorStatus.STOPPED)
        for state, status in ((hourly, TickStatus.SUCCESS), (watcher, TickStatus.SKIPPED)):
            for timestamp in (ticked_at - 3600, ticked_at):  # the latest one counts
                instance.create_tick(
                    TickData(
                        state.instigator_origin_id,
                        state.instigator_name,
                        state.instigator_type,
                        status,
                        timestamp,
                        run_ids=["run-1"] if status == TickStatus.SUCCESS else [],
                        selector_id=state.selector_id,
                    )
                )

    before = utcnow()
    report = scheduler_jobs_over_http(store, pg_server_url)

    assert report["instance"] == str(tmp_path)
    jobs = {job["name"]: job for job in report["jobs"]}
    assert {name for name, job in jobs.items() if job["type"] == "schedule"} == SCHEDULES
    assert {name: job["state"] for name, job in jobs.items()} == {
        **{d.name: "RUNNING" for d in (*defs.schedules, *defs.sensors)},
        "daily_full_sync": "STOPPED",
        sensor: "STOPPED",
    }
    assert (jobs["daily_full_sync"]["next_tick_at"], jobs["daily_full_sync"]["last_tick_at"]) == (None, None)
    assert (jobs["hourly_incremental_sync"]["last_tick_at"], jobs["hourly_incremental_sync"]["last_tick_status"]) == (
        "2026-11-28T07:00:00+03:00",
        "SUCCESS",
    )
    assert_next_tick(jobs["hourly_incremental_sync"], before)
    assert (jobs[sensor]["last_tick_at"], jobs[sensor]["last_tick_status"]) == ("2026-11-28T07:00:00+03:00", "SKIPPED")
    assert jobs["stock_sync_every_15_minutes"]["last_tick_at"] is None


# ---- unavailable databases: 503 without the password ------------------------------------------------------


def test_status_routes_answer_503_in_one_line_without_the_password(tmp_path, monkeypatch, caplog):
    url = "postgresql://postgres:hunter2pw@127.0.0.1:5432/tds_no_such_database"
    (tmp_path / "dagster.yaml").write_text(
        f"telemetry: {{enabled: false}}\nstorage:\n  postgres:\n    postgres_url: {url.replace('://', '+psycopg2://')}\n"
    )
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))

    with running_receiver(database_url=url, schema="tds", token=TOKEN) as receiver:
        answers = {
            path: requests.get(f"{receiver}{path}", timeout=TIMEOUT)
            for path in ("/health", "/api/tds/monitoring/health", "/api/tds/monitoring/scheduler/jobs")
        }

    for path, answer in answers.items():
        assert answer.status_code == 503, path
        detail = answer.json()["detail"]
        assert "unavailable" in detail and "\n" not in detail, detail
    assert answers["/health"].json()["detail"] == "the ERP database is unavailable (OperationalError); retry later"
    assert "Dagster instance" in answers["/api/tds/monitoring/scheduler/jobs"].json()["detail"]
    for said in [*(answer.text for answer in answers.values()), caplog.text]:
        assert "hunter2pw" not in said and "Traceback" not in said


def test_the_openapi_document_lists_the_monitoring_routes(store, pg_server_url):
    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        paths = requests.get(f"{url}/openapi.json", timeout=TIMEOUT).json()["paths"]

    for path in ("/health", "/api/tds/monitoring/health", "/api/tds/monitoring/scheduler/jobs"):
        assert "503" in paths[path]["get"]["responses"], path
