"""What the schedules cost in Zoho API calls a day, for three organization sizes, against each Zoho plan.

    .venv/bin/python benchmarks/schedule_cost.py

A model, not a measurement: each term is a per-run cost that `full_sync_benchmark.py` measures against the
simulator (ceil(N/200) list calls per listing, one detail call per changed record of an abridged entity,
one list call for an incremental run with no change, one confirmation GET per deletion, `/itemdetails` for
100 touched items a call). Webhooks (which cost nothing) are left out: every change is assumed to reach TDS
through the hourly incremental sync, the worst case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tds_pipelines.entities import ENTITIES

PLANS = {"Free": 1_000, "Standard": 2_000, "Professional": 5_000, "Premium+": 10_000}
HOURLY = 24


@dataclass(frozen=True)
class Organization:
    label: str
    records: dict[str, int]  # records per entity
    changes_per_day: dict[str, int]  # records created or edited per day, per entity
    warehouses: int
    deletions_per_day: int = 5


def _org(label: str, scale: int, warehouses: int) -> Organization:
    records = {
        "products": 1_000 * scale,
        "customers": 500 * scale,
        "vendors": 50 * scale,
        "invoices": 7_000 * scale,
        "sales_orders": 5_000 * scale,
        "customer_payments": 4_000 * scale,
        "bills": 1_500 * scale,
        "credit_notes": 300 * scale,
        "stock_adjustments": 400 * scale,
        "price_lists": 5,
        "users": 10,
        "warehouses": warehouses,
    }
    changes = {
        "products": 20 * scale,
        "customers": 5 * scale,
        "vendors": 1 * scale,
        "invoices": 30 * scale,
        "sales_orders": 25 * scale,
        "customer_payments": 15 * scale,
        "bills": 6 * scale,
        "credit_notes": 1 * scale,
        "stock_adjustments": 2 * scale,
    }
    return Organization(label, records, changes, warehouses)


ORGS = [_org("small (1k items, 7k invoices)", 1, 1), _org("medium (5k items, 35k invoices)", 5, 2)]
ORGS.append(_org("large (20k items, 140k invoices)", 20, 3))


def daily_calls(org: Organization) -> dict[str, int]:
    """Calls a day per schedule."""
    full = sum(math.ceil(org.records[s.name] / 200) for s in ENTITIES) + org.deletions_per_day
    full += org.warehouses * math.ceil(org.records["products"] / 200)  # the daily per-warehouse stock listing
    incremental = 0
    for spec in ENTITIES:
        if spec.strategy == "full_only":
            continue  # listed by the daily full sync only
        per_hour = org.changes_per_day.get(spec.name, 0) / HOURLY
        if spec.strategy == "date_window":  # no change filter: the last window_days of documents again
            window = org.records[spec.name] * spec.window_days / 365
            incremental += HOURLY * math.ceil(window / 200)
        else:
            incremental += HOURLY * max(1, math.ceil(per_hour / 200))
        if spec.needs_detail:
            incremental += org.changes_per_day.get(spec.name, 0)
    # Items are touched when the hourly sync writes products and documents (about 3 lines a document): the
    # stock run after each hourly sync pays ceil(touched / 100) calls, the other three of each hour none.
    touched = sum(org.changes_per_day.values()) * 3 / HOURLY
    stock = HOURLY * math.ceil(touched / 100) if touched else 0
    return {"daily_full_sync": full, "hourly_incremental_sync": incremental, "stock_sync_every_15_minutes": stock}


def main() -> None:
    print("Zoho API calls a day spent by the schedules (model; see the module docstring)\n")
    header = f"{'organization':36} {'full':>6} {'hourly':>7} {'stock':>6} {'total':>6}  " + "  ".join(
        f"{plan} {limit:,}".rjust(18) for plan, limit in PLANS.items()
    )
    print(header)
    for org in ORGS:
        calls = daily_calls(org)
        total = sum(calls.values())
        shares = "  ".join(f"{total / limit:>17.0%}" + ("!" if total > limit else " ") for limit in PLANS.values())
        print(
            f"{org.label:36} {calls['daily_full_sync']:>6} {calls['hourly_incremental_sync']:>7} "
            f"{calls['stock_sync_every_15_minutes']:>6} {total:>6}  {shares}"
        )
    print("\n! = more than the plan's daily quota: that plan cannot run every schedule for that organization")


if __name__ == "__main__":
    main()
