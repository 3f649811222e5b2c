"""The five schedules: their local times in a zone without daylight saving and in one with it, their skip
while their job still runs, and their cron overrides."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import cron_string_iterator

from tds_pipelines.schedules import PLAN, build_schedule

NAMES = {
    "daily_full_sync",
    "hourly_incremental_sync",
    "stock_sync_every_15_minutes",
    "auto_heal_every_15_minutes",
    "daily_statistics_comparison",
}


def schedules(monkeypatch, zone: str, crons: str | None = None) -> dict[str, dg.ScheduleDefinition]:
    monkeypatch.setenv("TDS_TIMEZONE", zone)
    if crons is None:
        monkeypatch.delenv("TDS_SCHEDULE_CRONS", raising=False)
    else:
        monkeypatch.setenv("TDS_SCHEDULE_CRONS", crons)
    return {entry[0]: build_schedule(*entry) for entry in PLAN}


def ticks(schedule: dg.ScheduleDefinition, start: datetime, count: int) -> list[datetime]:
    """The next `count` ticks after `start`, as the daemon computes them, in the schedule's zone."""
    zone = schedule.execution_timezone
    found = cron_string_iterator(start.timestamp(), schedule.cron_schedule, zone)
    return [next(found).astimezone(ZoneInfo(zone)) for _ in range(count)]


def local(ticks_: list[datetime]) -> list[str]:
    return [f"{t:%m-%d %H:%M%z}" for t in ticks_]


def test_five_schedules_run_by_default_in_the_configured_zone_with_a_description(monkeypatch):
    found = schedules(monkeypatch, "Asia/Baghdad")
    assert set(found) == NAMES
    for schedule in found.values():
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        assert schedule.execution_timezone == "Asia/Baghdad"
        assert len(schedule.description) > 40


def test_ticks_in_a_zone_without_daylight_saving(monkeypatch):
    found = schedules(monkeypatch, "Asia/Baghdad")
    start = datetime(2026, 3, 27, 23, 50, tzinfo=ZoneInfo("Asia/Baghdad"))
    assert local(ticks(found["daily_full_sync"], start, 2)) == ["03-28 02:00+0300", "03-29 02:00+0300"]
    assert local(ticks(found["daily_statistics_comparison"], start, 2)) == ["03-28 03:00+0300", "03-29 03:00+0300"]
    hourly = ticks(found["hourly_incremental_sync"], start, 24)
    assert [t.hour for t in hourly] == list(range(24))
    quarter = ticks(found["stock_sync_every_15_minutes"], start, 5)
    assert local(quarter) == ["03-28 00:00+0300", "03-28 00:15+0300", "03-28 00:30+0300", "03-28 00:45+0300",
                              "03-28 01:00+0300"]  # fmt: skip
    assert local(ticks(found["auto_heal_every_15_minutes"], start, 5)) == local(quarter)


def test_ticks_across_daylight_saving_changes(monkeypatch):
    found = schedules(monkeypatch, "America/New_York")
    zone = ZoneInfo("America/New_York")
    # Spring forward (2026-03-08): 02:00 does not exist that night; the full sync runs at 03:00, beside the
    # comparison, which then waits for it (checks.wait_for_full_sync).
    spring = datetime(2026, 3, 6, 12, tzinfo=zone)
    assert local(ticks(found["daily_full_sync"], spring, 4)) == [
        "03-07 02:00-0500",
        "03-08 03:00-0400",
        "03-09 02:00-0400",
        "03-10 02:00-0400",
    ]
    assert local(ticks(found["daily_statistics_comparison"], spring, 3)) == [
        "03-07 03:00-0500",
        "03-08 03:00-0400",
        "03-09 03:00-0400",
    ]
    # Fall back (2026-11-01): 01:00 happens twice, and the hourly sync runs at both.
    autumn = datetime(2026, 10, 31, 23, 30, tzinfo=zone)
    assert local(ticks(found["hourly_incremental_sync"], autumn, 4)) == [
        "11-01 00:00-0400",
        "11-01 01:00-0400",
        "11-01 01:00-0500",
        "11-01 02:00-0500",
    ]
    day = ticks(found["stock_sync_every_15_minutes"], autumn, 200)
    on_the_day = [t for t in day if t.date() == datetime(2026, 11, 1).date()]
    assert len([t for t in on_the_day if t.hour == 1]) == 8  # the repeated hour is not skipped


def test_a_tick_is_skipped_while_its_job_still_has_a_run(monkeypatch):
    found = schedules(monkeypatch, "Asia/Baghdad")
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance)
        assert isinstance(found["stock_sync_every_15_minutes"](context), dg.RunRequest)
        instance.add_run(dg.DagsterRun(job_name="stock_sync", run_id="slow-one", status=dg.DagsterRunStatus.STARTED))
        skipped = found["stock_sync_every_15_minutes"](context)
        assert isinstance(skipped, dg.SkipReason) and "slow-one"[:8] in skipped.skip_message
        # Other jobs' schedules are not held back by it.
        assert isinstance(found["auto_heal_every_15_minutes"](context), dg.RunRequest)


def test_crons_can_be_overridden_and_a_bad_one_is_named(monkeypatch):
    found = schedules(monkeypatch, "UTC", '{"auto_heal_every_15_minutes": "* * * * *"}')
    assert found["auto_heal_every_15_minutes"].cron_schedule == "* * * * *"
    assert found["daily_full_sync"].cron_schedule == "0 2 * * *"
    with pytest.raises(ValueError, match="TDS_SCHEDULE_CRONS.*daily_full_sync"):
        schedules(monkeypatch, "UTC", '{"daily_full_sync": "every night"}')
    with pytest.raises(ValueError, match="TDS_SCHEDULE_CRONS is not JSON"):
        schedules(monkeypatch, "UTC", "{daily_full_sync: 1}")
