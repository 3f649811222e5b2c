"""Auto-healing of the webhook queue (stuck items requeued, old dead letters retried once) and its health
figures, asserted on the queue's rows. Tests taking `store` run on PostgreSQL, then on SQLite.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tds_pipelines.erp.db import as_utc, utcnow
from tds_pipelines.erp.healing import QueueHealth, queue_health, requeue_stuck, retry_old_dead_letters
from tds_pipelines.erp.queue import (
    COMPLETED,
    DEAD_LETTER,
    FAILED,
    PENDING,
    PROCESSING,
    claim_ready,
    complete,
    import_deliveries,
    replay,
)
from tds_pipelines.erp.tables import entity_tables, sync_queue
from tds_pipelines.sync.apply import drain
from tds_pipelines_tests.sync_fixtures import row_count
from tds_pipelines_tests.test_webhook_queue import REFUSED, T0, add_erp_rule, deliver, items, product

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def claimed(engine, count: int, run_id: str) -> list[int]:
    """`count` new deliveries, claimed by `run_id`; their ids."""
    for n in range(count):
        deliver(engine, {"item": product(f"{run_id}-{n}", "Tea", T0)})
    return [item.id for item in claim_ready(engine, count, run_id)]


def set_rows(observer, ids: list[int], **values) -> None:
    with observer.begin() as conn:
        conn.execute(sync_queue.update().where(sync_queue.c.id.in_(ids)).values(**values))


def heal_entries(row: dict) -> list[tuple]:
    return [(entry["status"], entry["attempts"], entry["error"]) for entry in row["error_history"]]


# -- stuck items -----------------------------------------------------------------------------------------


def test_items_of_an_ended_run_are_requeued_and_applied_once(store):
    engine, observer = store
    dead = claimed(engine, 3, "dead")
    live = claimed(engine, 2, "live")
    asked = []

    def run_ended(run_id: str | None) -> bool:
        asked.append(run_id)
        return run_id == "dead"

    assert requeue_stuck(engine, run_ended) == dead
    assert sorted(asked) == ["dead", "live"]  # once per run, not per item
    queue = items(observer)
    for item_id in dead:
        row = queue[item_id]
        assert (row["status"], row["run_id"], row["locked_at"], row["attempts"]) == (PENDING, None, None, 0)
        assert heal_entries(row) == [("requeued", 0, "requeued by auto_heal: run dead ended")]
        assert as_utc(row["next_attempt_at"]) <= utcnow()
    assert {queue[i]["status"] for i in live} == {PROCESSING} and {queue[i]["run_id"] for i in live} == {"live"}

    stats = drain(engine, "healer")
    assert stats["products"].items == 3 and stats["products"].inserted == 3
    queue = items(observer)
    assert {(queue[i]["status"], queue[i]["run_id"]) for i in dead} == {(COMPLETED, "healer")}
    assert row_count(observer, entity_tables["products"]) == 3
    assert requeue_stuck(engine, run_ended) == []  # the live run's items stay its own


def test_a_live_runs_items_are_requeued_only_once_locked_longer_than_the_limit(store):
    engine, observer = store
    recent, old = claimed(engine, 2, "recent"), claimed(engine, 2, "old")
    set_rows(observer, recent, locked_at=utcnow() - timedelta(minutes=10))
    set_rows(observer, old, locked_at=utcnow() - timedelta(minutes=61))
    assert requeue_stuck(engine, lambda run_id: False) == old
    queue = items(observer)
    assert {(queue[i]["status"], queue[i]["run_id"]) for i in recent} == {(PROCESSING, "recent")}
    for item_id in old:
        assert queue[item_id]["status"] == PENDING and queue[item_id]["attempts"] == 0
        assert heal_entries(queue[item_id]) == [("requeued", 0, "requeued by auto_heal: locked for 61 minutes")]
    assert requeue_stuck(engine, lambda run_id: False, max_locked=timedelta(minutes=5)) == recent


def test_an_item_settled_or_taken_over_while_its_run_is_asked_about_is_left_alone(store):
    engine, observer = store
    done, taken, stuck = claimed(engine, 3, "finishing")

    def run_ended(run_id: str | None) -> bool:
        with engine.begin() as conn:  # the run completes one item as it ends
            complete(conn, [done])
        set_rows(observer, [taken], run_id="other", locked_at=utcnow())  # another run takes one over
        return True

    assert requeue_stuck(engine, run_ended) == [stuck]
    queue = items(observer)
    assert (queue[done]["status"], queue[done]["error_history"]) == (COMPLETED, None)
    assert (queue[taken]["status"], queue[taken]["run_id"], queue[taken]["error_history"]) == (
        PROCESSING,
        "other",
        None,
    )
    assert queue[stuck]["status"] == PENDING


def test_a_row_locked_by_a_run_settling_it_is_skipped_not_waited_for(erp):
    engine, observer = erp
    busy, free = claimed(engine, 2, "ending")
    result: list[list[int]] = []
    with observer.connect() as settling:
        settling.execute(select(sync_queue.c.id).where(sync_queue.c.id == busy).with_for_update())
        healer = threading.Thread(target=lambda: result.append(requeue_stuck(engine, lambda run_id: True)))
        healer.start()
        healer.join(timeout=30)
        assert not healer.is_alive(), "requeue_stuck waited for the locked row"
        settling.rollback()  # the run did not settle it after all
    assert result == [[free]]
    assert items(observer)[busy]["status"] == PROCESSING
    assert requeue_stuck(engine, lambda run_id: True) == [busy]  # the next heal takes it


# -- dead letters ----------------------------------------------------------------------------------------


def died_ago(observer, item_id: int, hours: float) -> None:
    """Move the item's last death `hours` into the past."""
    with observer.connect() as conn:
        history = conn.execute(select(sync_queue.c.error_history).where(sync_queue.c.id == item_id)).scalar_one()
    *_, death = [entry for entry in history if entry["status"] == DEAD_LETTER]
    death["at"] = (utcnow() - timedelta(hours=hours)).isoformat()
    set_rows(observer, [item_id], error_history=history)


def test_an_old_dead_letter_is_retried_once_until_replayed_by_hand(store, monkeypatch):
    engine, observer = store
    monkeypatch.setenv("TDS_WEBHOOK_MAX_ATTEMPTS", "1")
    add_erp_rule(observer)
    received = utcnow() - timedelta(hours=30)
    old = deliver(engine, {"item": product("1", REFUSED, T0)}, received_at=received)[0]
    young = deliver(engine, {"item": product("2", REFUSED, T0)}, received_at=received)[0]
    drain(engine, "first")
    died_ago(observer, old, 25)
    died_ago(observer, young, 23)

    assert retry_old_dead_letters(engine) == [old]
    queue = items(observer)
    row = queue[old]
    assert (row["status"], row["attempts"], row["last_error"], row["run_id"]) == (PENDING, 0, None, None)
    assert utcnow() - timedelta(minutes=1) < as_utc(row["auto_retried_at"]) <= utcnow()
    (death, *_), (status, attempts, error) = row["error_history"], heal_entries(row)[-1]
    assert death["status"] == DEAD_LETTER and (status, attempts) == ("auto_retried", 1) and "erp_rule" in error
    assert (queue[young]["status"], queue[young]["auto_retried_at"]) == (DEAD_LETTER, None)
    assert retry_old_dead_letters(engine) == []

    drain(engine, "still refused")  # dies again, and a day passes: retried before, it waits for an operator
    died_ago(observer, old, 25)
    assert items(observer)[old]["status"] == DEAD_LETTER and retry_old_dead_letters(engine) == []

    assert replay(engine, ids=[old]) == 1
    assert items(observer)[old]["auto_retried_at"] is None
    drain(engine, "after the replay")  # dies again: received 30 h ago, but dead for a moment only
    assert items(observer)[old]["status"] == DEAD_LETTER and retry_old_dead_letters(engine) == []
    died_ago(observer, old, 25)
    assert retry_old_dead_letters(engine) == [old]
    row = items(observer)[old]
    assert row["status"] == PENDING and [status for status, *_ in heal_entries(row)] == [
        DEAD_LETTER,
        "auto_retried",
        DEAD_LETTER,
        "replayed",
        DEAD_LETTER,
        "auto_retried",
    ]


def test_a_dead_letter_without_history_dies_at_its_receipt_and_the_limit_bounds_a_call(store):
    engine, observer = store
    assert import_deliveries(engine, [f'{{"item": {{"item_id": "{n}", "name": "Tea"}}}}' for n in range(3)])[0] == 3
    first, second, recent = sorted(items(observer))
    set_rows(observer, [first, second], received_at=utcnow() - timedelta(hours=25))
    set_rows(observer, [recent], received_at=utcnow() - timedelta(hours=23))
    assert retry_old_dead_letters(engine, limit=1) == [first]
    assert retry_old_dead_letters(engine, limit=1) == [second]
    assert retry_old_dead_letters(engine) == []
    assert retry_old_dead_letters(engine, older_than=timedelta(hours=22)) == [recent]
    assert drain(engine, "imports")["products"].inserted == 3


# -- health ----------------------------------------------------------------------------------------------


def at(delta: timedelta) -> str:
    return (NOW + delta).isoformat()


def logged(status: str, ago: timedelta) -> dict:
    return {"at": at(-ago), "attempts": 1, "error": "boom", "status": status}


H, M = timedelta(hours=1), timedelta(minutes=1)


def plant(observer, status: str, received_ago: timedelta = 10 * M, **values) -> None:
    with observer.begin() as conn:
        conn.execute(sync_queue.insert().values(status=status, attempts=1, received_at=NOW - received_ago, **values))


def test_queue_health_figures_on_a_planted_queue(store):
    engine, observer = store
    empty = queue_health(engine, now=NOW)
    assert empty == QueueHealth(
        dict.fromkeys((PENDING, PROCESSING, COMPLETED, FAILED, DEAD_LETTER), 0), None, 0, 0, 0, 0, None
    )
    assert "success_rate_24h" not in empty.as_metadata() and "oldest_pending_age_seconds" not in empty.as_metadata()

    plant(observer, PENDING, 5 * M, next_attempt_at=NOW - 5 * M)
    # Replayed a moment ago after failures of two days ago: waits from its replay, fails nothing today.
    replayed = [logged(FAILED, 48 * H), logged(DEAD_LETTER, 48 * H), logged("replayed", 2 * M), logged("requeued", M)]
    plant(observer, PENDING, 10 * 24 * H, next_attempt_at=NOW - 2 * M, error_history=replayed)
    plant(observer, FAILED, 20 * M, next_attempt_at=NOW - 10 * M, error_history=[logged(FAILED, H)])  # oldest due
    plant(observer, FAILED, 60 * M, next_attempt_at=NOW + M, error_history=[logged(FAILED, 2 * H), logged(FAILED, H)])
    plant(observer, PROCESSING, locked_at=NOW - 61 * M, run_id="a")
    plant(observer, PROCESSING, locked_at=NOW - 10 * M, run_id="b")
    plant(observer, COMPLETED, 3 * H, completed_at=NOW - H, error_history=[logged(FAILED, 2 * H)])
    plant(observer, COMPLETED, 23 * H, completed_at=NOW - 23 * H)
    plant(observer, COMPLETED, 27 * H, completed_at=NOW - 25 * H, error_history=[logged(FAILED, 26 * H)])
    dead = [logged(FAILED, 3 * H), logged(FAILED, 2 * H), logged(DEAD_LETTER, H)]
    plant(observer, DEAD_LETTER, 4 * H, error_history=dead)
    plant(observer, DEAD_LETTER, H, completed_at=NOW - H, event="sync_rejected")  # no history: no attempt
    plant(observer, DEAD_LETTER, 31 * H, error_history=[logged(DEAD_LETTER, 30 * H)])

    health = queue_health(engine, now=NOW)
    assert health == QueueHealth(
        counts={PENDING: 2, PROCESSING: 2, COMPLETED: 3, FAILED: 2, DEAD_LETTER: 3},
        oldest_pending_age_seconds=600.0,
        dead_letters=3,
        stuck=1,
        completed_24h=2,
        failed_attempts_24h=7,  # 1 FAILED due, 2 FAILED not due, 1 COMPLETED at last, 3 dead letter
        success_rate_24h=2 / 9,
    )
    assert health.as_metadata() == {
        "pending_items": 2,
        "processing_items": 2,
        "completed_items": 3,
        "failed_items": 2,
        "dead_letter_items": 3,
        "oldest_pending_age_seconds": 600.0,
        "dead_letters": 3,
        "stuck": 1,
        "completed_24h": 2,
        "failed_attempts_24h": 7,
        "success_rate_24h": 2 / 9,
    }
    assert queue_health(engine, stuck_after=5 * M, now=NOW).stuck == 2
