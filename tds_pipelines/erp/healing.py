"""Auto-healing of the webhook queue, and its health figures.

Two faults need no operator: items left PROCESSING by a run that ended (or that hold their lock far too long)
go back to PENDING, and a dead letter gets one automatic retry a day later (most die of a passing outage).
An item retried that way and dead again waits for an operator: `replay` by hand gives it a new automatic
retry. Each change appends its reason to error_history, as `fail` and `replay` do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, union_all

from tds_pipelines.erp.db import as_utc, utcnow, write_transaction
from tds_pipelines.erp.queue import (
    _CHUNK,
    COMPLETED,
    DEAD_LETTER,
    FAILED,
    PENDING,
    PROCESSING,
    _among,
    _chunks,
    _update_each,
    q,
    revived,
)

REQUEUED, AUTO_RETRIED = "requeued", "auto_retried"
DAY = timedelta(hours=24)


def _entry(now: datetime, attempts: int, error: str | None, status: str) -> dict:
    return {"at": now.isoformat(), "attempts": attempts, "error": error, "status": status}


def requeue_stuck(
    engine: Engine,
    run_ended: Callable[[str | None], bool],
    max_locked: timedelta = timedelta(minutes=60),
    now: datetime | None = None,
) -> list[int]:
    """Put back to PENDING, due now and with no attempt counted, the PROCESSING items whose run has ended
    (`run_ended(run_id)`, asked once per run) or that are locked longer than `max_locked`; returns their ids.

    `run_ended` is asked outside any transaction (it may be slow), so an item is requeued only if it is
    still PROCESSING under the claim that was read (same run_id and locked_at): one its run completed, failed
    or released meanwhile, or another run took over, is left alone. On PostgreSQL the rows are then locked
    ``FOR UPDATE SKIP LOCKED``: a row a run is settling at that very moment is skipped, not waited for."""
    now = as_utc(now) or utcnow()
    with engine.connect() as conn:
        claims = {row.id: (row.run_id, row.locked_at) for row in conn.execute(_processing())}
        conn.rollback()
    ended = {run_id: run_ended(run_id) for run_id in dict.fromkeys(run_id for run_id, _ in claims.values())}
    reasons = {}
    for item_id, (run_id, locked_at) in claims.items():
        locked_for = now - as_utc(locked_at) if locked_at is not None else timedelta(0)  # unknown: not too long
        if ended[run_id]:
            reasons[item_id] = f"requeued by auto_heal: run {run_id} ended"
        elif locked_for > max_locked:
            reasons[item_id] = f"requeued by auto_heal: locked for {locked_for.total_seconds() // 60:.0f} minutes"
    changes = {}
    with write_transaction(engine) as conn:
        for chunk in _chunks(list(reasons), _CHUNK):
            still = _processing(q.c.attempts, q.c.error_history).where(_among(conn, chunk))
            for row in conn.execute(still.with_for_update(skip_locked=True)):
                if (row.run_id, row.locked_at) == claims[row.id]:
                    history = [*(row.error_history or []), _entry(now, row.attempts, reasons[row.id], REQUEUED)]
                    changes[row.id] = {
                        "status": PENDING,
                        "next_attempt_at": now,
                        "locked_at": None,
                        "run_id": None,
                        "error_history": history,
                    }
        _update_each(conn, changes, q.c.status == PROCESSING)
    return sorted(changes)


def _processing(*columns):
    return select(q.c.id, q.c.run_id, q.c.locked_at, *columns).where(q.c.status == PROCESSING)


def retry_old_dead_letters(
    engine: Engine, older_than: timedelta = DAY, now: datetime | None = None, limit: int = 1000
) -> list[int]:
    """Put back to PENDING, once, the dead letters that died more than `older_than` ago and were never
    retried automatically (auto_retried_at NULL; `replay` clears it); returns their ids.

    An item died at its last DEAD_LETTER entry in error_history, or at received_at when it has none (an
    import, a sync rejection). The query reads at most `limit` dead letters received before the cutoff
    (a death comes after the receipt), oldest first; those among them that died later wait for a later
    call. Attempts restart at 0 and the last error moves into error_history (status ``auto_retried``), as a
    replay does; auto_retried_at = now."""
    now = as_utc(now) or utcnow()
    cutoff = now - older_than
    candidates = (
        select(q.c.id, q.c.attempts, q.c.last_error, q.c.error_history, q.c.received_at)
        .where(q.c.status == DEAD_LETTER, q.c.auto_retried_at.is_(None), q.c.received_at < cutoff)
        .order_by(q.c.received_at, q.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with write_transaction(engine) as conn:
        changes = {
            row.id: revived(row, now, AUTO_RETRIED) | {"auto_retried_at": now}
            for row in conn.execute(candidates)
            if _died_at(row.error_history, row.received_at) < cutoff
        }
        _update_each(conn, changes)
    return sorted(changes)


def _died_at(history: list | None, received_at: datetime) -> datetime:
    deaths = [entry["at"] for entry in history or [] if entry.get("status") == DEAD_LETTER]
    return datetime.fromisoformat(deaths[-1]) if deaths else as_utc(received_at)


@dataclass(frozen=True)
class QueueHealth:
    """The queue's figures at one instant, what the queue's checks judge."""

    counts: dict[str, int]  # items per status, every status present
    oldest_pending_age_seconds: float | None
    dead_letters: int
    stuck: int
    completed_24h: int
    failed_attempts_24h: int
    success_rate_24h: float | None

    def as_metadata(self) -> dict[str, int | float]:
        """Flat numbers for Dagster metadata; a figure without a value (nothing waiting, nothing attempted)
        is left out rather than plotted as 0."""
        figures = {f"{status.lower()}_items": count for status, count in self.counts.items()} | {
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,
            "dead_letters": self.dead_letters,
            "stuck": self.stuck,
            "completed_24h": self.completed_24h,
            "failed_attempts_24h": self.failed_attempts_24h,
            "success_rate_24h": self.success_rate_24h,
        }
        return {name: value for name, value in figures.items() if value is not None}


def queue_health(
    engine: Engine, stuck_after: timedelta = timedelta(minutes=60), now: datetime | None = None
) -> QueueHealth:
    """The queue's health now.

    - oldest_pending_age_seconds: how long the oldest due item (PENDING, or FAILED with its retry due) has
      waited since it became due (next_attempt_at): a replayed old item counts from its replay. None when
      nothing waits.
    - stuck: PROCESSING items locked longer than `stuck_after`.
    - failed_attempts_24h: the failed attempts (FAILED and DEAD_LETTER entries of error_history) made in the
      last 24 hours, read from the items not COMPLETED and those completed in the last 24 hours (an item
      completed earlier makes no attempt after). A sync rejection, which has no history, is not an attempt.
    - success_rate_24h: completed_24h / (completed_24h + failed_attempts_24h), None when both are 0.

    Each figure is an aggregate over an index range of ix_tds_sync_queue_status_next, except the COMPLETED
    rows of the last 24 hours, which are told by completed_at."""
    now = as_utc(now) or utcnow()
    since = now - DAY
    waiting = [
        select(func.min(q.c.next_attempt_at)).where(q.c.status == status, q.c.next_attempt_at <= now)
        for status in (PENDING, FAILED)
    ]
    completed = (q.c.status == COMPLETED) & (q.c.completed_at >= since)
    figures = select(
        *(query.scalar_subquery() for query in waiting),
        select(func.count()).where(q.c.status == PROCESSING, q.c.locked_at < now - stuck_after).scalar_subquery(),
        select(func.count()).where(completed).scalar_subquery(),
    )
    histories = union_all(
        *(
            select(q.c.error_history).where(q.c.error_history.is_not(None), where)
            for where in (q.c.status.in_([PENDING, PROCESSING, FAILED, DEAD_LETTER]), completed)
        )
    )
    counts = dict.fromkeys((PENDING, PROCESSING, COMPLETED, FAILED, DEAD_LETTER), 0)
    with engine.connect() as conn:
        counts |= dict(conn.execute(select(q.c.status, func.count()).group_by(q.c.status)).all())
        *due, stuck, completed_24h = conn.execute(figures).one()
        failed = sum(_failures_since(history, since) for history in conn.execute(histories).scalars())
        conn.rollback()
    oldest = min((as_utc(at) for at in due if at is not None), default=None)
    attempts = completed_24h + failed
    return QueueHealth(
        counts=counts,
        oldest_pending_age_seconds=(now - oldest).total_seconds() if oldest else None,
        dead_letters=counts[DEAD_LETTER],
        stuck=stuck,
        completed_24h=completed_24h,
        failed_attempts_24h=failed,
        success_rate_24h=completed_24h / attempts if attempts else None,
    )


def _failures_since(history: list | None, since: datetime) -> int:
    return sum(
        entry.get("status") in (FAILED, DEAD_LETTER) and datetime.fromisoformat(entry["at"]) >= since
        for entry in history or []
    )
