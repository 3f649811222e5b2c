"""Zoho calls per day of the five schedules with no change in Zoho, for 5,000 items, 2 warehouses and 20,000
documents: measured through the simulator over a simulated day (cron ticks replayed).

    .venv/bin/python benchmarks/schedule_day_benchmark.py [--items N] [--documents N] [--warehouses N]

The simulator runs in its own process with limits too high to matter, holding the organization of
`_common.organization` (documents split as schedule_cost.py splits them; the counts are printed). A first
full sync fills a throwaway schema (not counted). Then every tick of the five schedules (tds_pipelines.schedules,
their crons in TDS_TIMEZONE) from local midnight to the next is replayed in time order, the ticks of one
minute in the schedules' order: each runs its job's code (tds_pipelines/assets.py, health.py, checks.py)
directly, not through Dagster, with a client named after the job, and spends what the simulator counts
between its start and its end.

Time is not simulated: the ticks run back to back and the "due" decisions read the real clock, which stays
just after the first full sync. The small full-only sets are never due in the hourly runs, and the stock sync
never finds its per-warehouse listing due (it lists only when no full sync has for 26 hours), as in a real
day: the 02:00 full sync listed them less than a day before. The hourly customer payments
(date_window) are meant to re-list the payments dated in the last 45 days of the real date (the simulator's
dates end a day before now): the script prints what a run listed against what that window holds.

Prints calls per schedule and per entity, each job's floor share of a 1,000-call plan, the total against that
plan (target: at least 40% left), wall seconds, and the ratio to schedule_cost.py's model of the same
organization with no change (the model leaves statistics_comparison out).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from _common import (
    UNLIMITED,
    full_sync,
    organization_from_args,
    simulator_client,
    simulator_process,
    stats,
    throwaway_schema,
    unlimited_simulator_args,
)
from dagster._utils.schedules import cron_string_iterator
from schedule_cost import Organization, daily_calls
from sqlalchemy import func, select

from tds_pipelines import settings
from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.healing import queue_health, requeue_stuck, retry_old_dead_letters
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.schedules import schedules
from tds_pipelines.sync.counts import compare_counts
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines.sync.stock import sync_item_stock
from tds_pipelines.zoho.rate_budget import DEFAULT_SHARES

PLAN_CALLS = 1_000
TARGET_LEFT = 0.4


def incremental_sync(client, engine, run_id):
    return [sync_entity(spec, client, engine, Scope("incremental"), run_id) for spec in ENTITIES]


def stock_sync(client, engine, run_id):
    return [sync_item_stock(client, engine, run_id)]


def auto_heal(client, engine, run_id):
    """The webhook_queue asset's healing and health read (no Zoho call); a run id it cannot look up waits for
    the lock age, as in the asset."""
    requeue_stuck(engine, lambda _run_id: False, settings.heal_stuck_after())
    retry_old_dead_letters(engine, settings.heal_dead_letters_after())
    queue_health(engine, settings.heal_stuck_after())
    return []


def statistics_comparison(client, engine, run_id):
    return [compare_counts(client, engine, spec) for spec in ENTITIES]


JOBS = {
    "full_sync": full_sync,
    "incremental_sync": incremental_sync,
    "stock_sync": stock_sync,
    "auto_heal": auto_heal,
    "statistics_comparison": statistics_comparison,
}


def day_ticks(timezone: str) -> list[tuple[datetime, int]]:
    """(tick, index in `schedules`) of every schedule from local midnight today to the next, in time order."""
    zone = ZoneInfo(timezone)
    today = datetime.now(zone).date()
    start = datetime(today.year, today.month, today.day, tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), start.timetz())
    ticks = []
    for index, schedule in enumerate(schedules):
        for tick in cron_string_iterator(start.timestamp(), schedule.cron_schedule, schedule.execution_timezone):
            if tick >= end:
                break
            ticks.append((tick, index))
    return sorted(ticks)


def payments_in_window(engine) -> int:
    """Customer payments the hourly run re-lists: dated in the last window_days of the real date."""
    spec = next(s for s in ENTITIES if s.name == "customer_payments")
    table = entity_tables[spec.name]
    since = datetime.now().date() - timedelta(days=spec.window_days)
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(table.c.date >= since)).scalar_one()


@dataclass
class Tally:
    """What one schedule's ticks spent over the day."""

    calls: list[int] = field(default_factory=list)  # per tick, as the simulator counted them
    parts: Counter = field(default_factory=Counter)  # calls per entity
    listed: Counter = field(default_factory=Counter)  # records listed per entity
    skips: Counter = field(default_factory=Counter)  # "entity reason" -> ticks


def replay_day(url: str, engine, timezone: str) -> dict[str, Tally]:
    """Run every tick of the day, in order; what each schedule spent."""
    tallies = {schedule.name: Tally() for schedule in schedules}
    for tick, index in day_ticks(timezone):
        schedule, job = schedules[index], schedules[index].job_name
        tally = tallies[schedule.name]
        before = stats(url)["api_calls"]
        with simulator_client(url, engine, job, UNLIMITED) as client:
            results = JOBS[job](client, engine, f"replay-{job}-{tick:%H%M}")
        tally.calls.append(stats(url)["api_calls"] - before)
        for result in results:
            tally.parts[result.entity] += result.api_calls
            tally.listed[result.entity] += getattr(result, "fetched", 0)
            if skipped := getattr(result, "skipped", None):
                tally.skips[f"{result.entity} {skipped}"] += 1
    return tallies


def print_day(tallies: dict[str, Tally], timezone: str) -> int:
    """The calls of each schedule, by part; returns the day's total."""
    print(f"\n-- one day replayed: {sum(len(t.calls) for t in tallies.values())} ticks, 00:00 to 24:00 {timezone} --")
    print(f"{'schedule':30} {'job':22} {'ticks':>5} {'calls':>6} {'per tick':>9}  floor of 1,000")
    for schedule in schedules:
        tally, job = tallies[schedule.name], schedule.job_name
        low, high = min(tally.calls), max(tally.calls)
        floor = f"{DEFAULT_SHARES[job] * PLAN_CALLS:.0f}" if job in DEFAULT_SHARES else "(other)"
        per_tick = str(low) if low == high else f"{low}-{high}"
        print(f"{schedule.name:30} {job:22} {len(tally.calls):>5} {sum(tally.calls):>6} {per_tick:>9}  {floor:>14}")
        spent = ", ".join(f"{entity} {n}" for entity, n in tally.parts.items() if n)
        skipped = ", ".join(f"{what} x{n}" for what, n in tally.skips.items())
        print(f"{'':32}calls by part: {spent or 'none'}" + (f"; skipped: {skipped}" if skipped else ""))
    total = sum(sum(t.calls) for t in tallies.values())
    print(f"{'total':30} {'':22} {sum(len(t.calls) for t in tallies.values()):>5} {total:>6}")
    return total


def print_plan_share(total: int) -> None:
    left = 1 - total / PLAN_CALLS
    verdict = "meets" if left >= TARGET_LEFT else "misses"
    print(
        f"the day: {total} calls = {total / PLAN_CALLS:.0%} of a {PLAN_CALLS:,}-call plan, {left:.0%} left "
        f"({verdict} the target of {TARGET_LEFT:.0%} left)"
    )


def print_model(tallies: dict[str, Tally], records: dict[str, int], warehouses: int) -> None:
    print("\n-- against schedule_cost.py's model (same records, no change, no deletion) --")
    model = daily_calls(Organization("this run", records, {}, warehouses, deletions_per_day=0))
    measured = {name: sum(tallies[name].calls) for name in model}
    rows = [(name, measured[name], modelled) for name, modelled in model.items()]
    rows.append(("modelled schedules", sum(measured.values()), sum(model.values())))
    for name, calls, modelled in rows:
        ratio = f"{calls / modelled:.2f}" if modelled else "-"
        print(f"{name:30} measured {calls:>5}  model {modelled:>5}  measured/model {ratio}")
    comparison = sum(tallies["daily_statistics_comparison"].calls)
    print(f"(the model has no daily_statistics_comparison: {comparison} calls measured)")


def main() -> None:
    records = organization_from_args(__doc__.splitlines()[0])
    timezone = settings.timezone()
    print("schedule day benchmark: Zoho calls of one day of the five schedules, no change in Zoho")
    print("records: " + ", ".join(f"{name} {n:,}" for name, n in records.items()))
    with simulator_process(*unlimited_simulator_args(records)) as url, throwaway_schema() as (engine, _):
        started = time.perf_counter()
        with simulator_client(url, engine, "full_sync", UNLIMITED) as client:
            full_sync(client, engine, "first-full-sync")
        print(f"first full sync (not counted): {client.calls:,} calls, {time.perf_counter() - started:.0f}s")

        started = time.perf_counter()
        tallies = replay_day(url, engine, timezone)
        wall = time.perf_counter() - started
        total = print_day(tallies, timezone)
        print_plan_share(total)
        hourly = tallies["hourly_incremental_sync"]
        window = payments_in_window(engine)
        print(
            f"hourly customer_payments: {hourly.listed['customer_payments'] / len(hourly.calls):,.0f} records listed "
            f"per run in {hourly.parts['customer_payments'] / len(hourly.calls):.0f} calls; the 45-day window "
            f"holds {window} ({max(1, math.ceil(window / 200))} call)"
        )
        print(f"wall time of the replayed day: {wall:.0f}s")
        print_model(tallies, records, records["warehouses"])


if __name__ == "__main__":
    main()
