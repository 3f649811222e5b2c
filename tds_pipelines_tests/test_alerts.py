"""Alerts as incidents: one open row per incident key in ``tds_alerts``, counted while open, a new row once
resolved, and each told once to a Slack-compatible webhook when raised and once when it recovers.

Tests taking `store` run on PostgreSQL and on a SQLite file; the concurrency test needs PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from tds_pipelines.erp.alerts import (
    get_alert,
    mark_notified,
    open_alerts,
    pending_notifications,
    raise_alert,
    resolve_alert,
)
from tds_pipelines.erp.tables import alerts
from tds_pipelines.notify import notify_pending
from tds_pipelines_tests.capture import capture_server
from tds_pipelines_tests.sync_fixtures import free_port

INCIDENT = "check:zoho/invoices:count_matches_zoho"
SECRET = "xoxb-T0SECRET-B0SECRET-9f8e7d6c5b4a"
HOOK_PATH = f"/services/T000/B000/{SECRET}"
UI_URL = "http://dagster.example:3000"


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    """No webhook unless a test names one; the Dagster UI's address for the messages' links."""
    monkeypatch.delenv("TDS_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("TDS_DAGSTER_UI_URL", UI_URL)


def rows(observer) -> list[dict]:
    with observer.connect() as conn:
        return [dict(row) for row in conn.execute(select(alerts).order_by(alerts.c.id)).mappings()]


def texts(capture) -> list[str]:
    return [json.loads(body)["text"] for body in capture.bodies()]


def raise_check(engine, message: str = "12 invoices in the ERP, 14 in Zoho", incident: str = INCIDENT):
    return raise_alert(engine, incident, "check_failed", "ERROR", message, entity="invoices", details={"erp": 12})


# -- incidents -------------------------------------------------------------------------------------------


def test_raising_an_open_incident_again_counts_an_occurrence(store):
    engine, observer = store
    first, created = raise_alert(engine, INCIDENT, "check_failed", "WARN", "12 invoices in the ERP, 14 in Zoho")
    assert created and first.occurrences == 1 and first.created_at == first.last_seen_at
    again, created = raise_check(engine, "11 invoices in the ERP, 14 in Zoho")
    assert not created and again.id == first.id
    (row,) = rows(observer)
    assert row["id"] == first.id and row["occurrences"] == 2 and row["resolved_at"] is None
    assert row["message"] == "11 invoices in the ERP, 14 in Zoho" and row["details"] == {"erp": 12}
    assert row["kind"] == "check_failed" and row["incident"] == INCIDENT
    assert again.last_seen_at > again.created_at == first.created_at
    assert open_alerts(engine) == [again] and get_alert(engine, first.id) == again


def test_an_open_incident_may_worsen_to_error_but_never_softens(store):
    engine, _ = store
    raise_alert(engine, INCIDENT, "queue_stalled", "WARN", "the oldest webhook waits 20 minutes")
    worse, _ = raise_alert(engine, INCIDENT, "queue_stalled", "ERROR", "the oldest webhook waits 2 hours")
    still, _ = raise_alert(engine, INCIDENT, "queue_stalled", "WARN", "the oldest webhook waits 50 minutes")
    assert (worse.severity, still.severity, still.occurrences) == ("ERROR", "ERROR", 3)


def test_no_details_are_stored_as_sql_null(store):
    engine, observer = store
    alert, _ = raise_alert(engine, INCIDENT, "run_failed", "ERROR", "the run failed")
    with observer.connect() as conn:
        null_details = conn.execute(select(alerts.c.id).where(alerts.c.details.is_(None))).scalars().all()
    assert null_details == [alert.id] and alert.details is None


def test_a_resolved_incident_raised_again_is_a_new_alert(store):
    engine, observer = store
    first, _ = raise_check(engine)
    resolved = resolve_alert(engine, INCIDENT)
    assert resolved is not None and resolved.id == first.id and resolved.resolved_at >= first.created_at
    assert resolve_alert(engine, INCIDENT) is None and open_alerts(engine) == []
    second, created = raise_check(engine)
    assert created and second.id != first.id and second.occurrences == 1
    old, new = rows(observer)
    assert old["id"] == first.id and old["resolved_at"] is not None and old["occurrences"] == 1
    assert new["id"] == second.id and new["resolved_at"] is None and new["incident"] == INCIDENT
    assert open_alerts(engine) == [second]


def test_a_severity_or_notification_not_known_is_refused(store):
    engine, observer = store
    with pytest.raises(ValueError, match="severity"):
        raise_alert(engine, INCIDENT, "check_failed", "INFO", "not a severity")
    assert rows(observer) == []
    alert, _ = raise_check(engine)
    with pytest.raises(ValueError, match="raised"):
        mark_notified(engine, alert.id, "sent")
    assert rows(observer)[0]["notified_at"] is None


def test_concurrent_raises_of_a_new_incident_store_one_open_row(erp):
    """Both raises wait behind a table lock, then run at once: one inserts, the other counts an occurrence."""
    engine, observer = erp
    with observer.connect() as blocker, ThreadPoolExecutor(max_workers=2) as pool:
        blocker.execute(text("LOCK TABLE tds_alerts IN SHARE MODE"))  # INSERT must wait for it
        raises = [pool.submit(raise_check, engine) for _ in range(2)]
        deadline = time.monotonic() + 15
        while waiting_on_alerts(blocker) < 2:
            assert time.monotonic() < deadline, "the two raises never both waited on tds_alerts"
            time.sleep(0.02)
        blocker.commit()
        outcomes = [future.result(timeout=30) for future in raises]
    assert sorted(created for _, created in outcomes) == [False, True]
    assert len({alert.id for alert, _ in outcomes}) == 1
    (row,) = rows(observer)
    assert row["occurrences"] == 2 and row["resolved_at"] is None


def waiting_on_alerts(conn) -> int:
    """Sessions of this database waiting for a lock on tds_alerts (pg_locks is live, not a snapshot)."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'tds_alerts'::regclass "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    return conn.execute(query).scalar_one()


def test_many_threads_raising_fresh_incidents_at_once_keep_one_open_row_each(erp):
    engine, observer = erp
    incidents = [f"queue_stalled:{n}" for n in range(10)]
    start = threading.Barrier(4)

    def raise_all() -> list[bool]:
        start.wait(timeout=10)
        return [raise_check(engine, incident=incident)[1] for incident in incidents]

    with ThreadPoolExecutor(max_workers=4) as pool:
        created = [future.result(timeout=60) for future in [pool.submit(raise_all) for _ in range(4)]]
    assert [sum(column) for column in zip(*created, strict=True)] == [1] * len(incidents)
    stored = rows(observer)
    assert sorted(row["incident"] for row in stored) == sorted(incidents)
    assert {row["occurrences"] for row in stored} == {4}


def test_pending_notifications_come_oldest_event_first(store):
    engine, _ = store
    a, _ = raise_check(engine, incident="a")
    mark_notified(engine, a.id, "raised")
    b, _ = raise_check(engine, incident="b")
    resolve_alert(engine, "a")
    c, _ = raise_check(engine, incident="c")
    pending = [(alert.incident, what) for alert, what in pending_notifications(engine)]
    assert pending == [("b", "raised"), ("a", "recovered"), ("c", "raised")]
    assert {b.id, c.id} == {alert.id for alert, what in pending_notifications(engine) if what == "raised"}


# -- notifications ---------------------------------------------------------------------------------------


def test_a_raised_alert_is_posted_once_and_its_recovery_once(store, monkeypatch):
    engine, observer = store
    with capture_server(path=HOOK_PATH) as capture:
        monkeypatch.setenv("TDS_ALERT_WEBHOOK_URL", capture.url)
        alert, _ = raise_check(engine, "12 invoices in the ERP, 14 in Zoho <invoices>")
        raise_check(engine, "12 invoices in the ERP, 14 in Zoho <invoices>")
        assert [notify_pending(engine) for _ in range(3)] == [1, 0, 0]
        (raised,) = texts(capture)
        notified = rows(observer)[0]
        assert notified["notified_at"] is not None and notified["recovery_notified_at"] is None

        raise_check(engine)  # a third occurrence of the incident already told: no news
        assert notify_pending(engine) == 0
        resolve_alert(engine, INCIDENT)
        assert [notify_pending(engine) for _ in range(3)] == [1, 0, 0]
        _, recovered = texts(capture)
        assert [path for path, _, _ in capture.received] == [HOOK_PATH, HOOK_PATH]
    (row,) = rows(observer)
    assert row["id"] == alert.id and row["notified_at"] == notified["notified_at"]
    assert row["recovery_notified_at"] is not None and pending_notifications(engine) == []

    for part in ("ERROR", "check_failed (invoices)", "12 invoices in the ERP, 14 in Zoho &lt;invoices&gt;"):
        assert part in raised
    assert "seen 2 times" in raised and "Since " in raised and INCIDENT in raised
    assert "tds status" in raised and UI_URL in raised
    assert "recovered" in recovered and "check_failed (invoices)" in recovered and "Lasted " in recovered
    assert "seen 3 times" in recovered


def test_without_a_webhook_url_alerts_stay_in_the_table(store):
    engine, observer = store
    alert, _ = raise_check(engine)
    assert notify_pending(engine) == 0
    assert rows(observer)[0]["notified_at"] is None
    assert [(pending.id, what) for pending, what in pending_notifications(engine)] == [(alert.id, "raised")]


def test_a_failed_post_stays_pending_and_is_sent_on_the_next_call(store, caplog):
    engine, observer = store
    first, _ = raise_check(engine, incident="first")
    raise_alert(engine, "second", "quota_skip", "WARN", "daily quota spent", entity="bills")
    with capture_server(answers=(500,), path=HOOK_PATH) as capture:
        assert notify_pending(engine, capture.url) == 0  # a failing webhook ends the call: one POST
        assert len(capture.bodies()) == 1
        assert [row["notified_at"] for row in rows(observer)] == [None, None]
        assert notify_pending(engine, capture.url) == 2
        sent = texts(capture)
    assert len(sent) == 3 and sent[0] == sent[1] and "quota_skip (bills)" in sent[2]
    assert all(row["notified_at"] is not None for row in rows(observer))
    assert f"alert {first.id} (raised) not sent" in caplog.text and "HTTP 500" in caplog.text
    assert SECRET not in caplog.text


def test_a_refused_body_does_not_hold_back_the_others(store):
    engine, observer = store
    raise_check(engine, incident="first")
    raise_check(engine, incident="second")
    with capture_server(answers=(400,), path=HOOK_PATH) as capture:
        assert notify_pending(engine, capture.url) == 1
        assert [row["notified_at"] is None for row in rows(observer)] == [True, False]
        assert notify_pending(engine, capture.url) == 1
        assert len(capture.bodies()) == 3
    assert pending_notifications(engine) == []


def test_an_alert_resolved_before_it_was_told_is_never_sent(store):
    engine, observer = store
    raise_check(engine)
    resolve_alert(engine, INCIDENT)
    with capture_server(path=HOOK_PATH) as capture:
        assert notify_pending(engine, capture.url) == 0
        assert capture.bodies() == []
    (row,) = rows(observer)
    assert row["resolved_at"] is not None and row["notified_at"] is None and row["recovery_notified_at"] is None
    assert pending_notifications(engine) == []


@pytest.mark.parametrize("broken", ["closed_port", "malformed", "no_scheme"])
def test_the_webhook_url_never_appears_in_logs(erp, caplog, broken):
    engine, observer = erp
    url = {
        "closed_port": f"http://127.0.0.1:{free_port()}{HOOK_PATH}",
        "malformed": f"http://[{SECRET}{HOOK_PATH}",
        "no_scheme": f"hooks.slack.com{HOOK_PATH}",
    }[broken]
    caplog.set_level(logging.DEBUG)
    alert, _ = raise_check(engine)
    assert notify_pending(engine, url, timeout=5) == 0
    assert f"alert {alert.id} (raised) not sent to TDS_ALERT_WEBHOOK_URL" in caplog.text
    assert SECRET not in caplog.text and all(SECRET not in str(record.args) for record in caplog.records)
    assert rows(observer)[0]["notified_at"] is None
