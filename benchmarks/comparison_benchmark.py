"""`statistics_comparison` for 12 entities: its Zoho calls (one count call per entity where Zoho can count) and
time.

    .venv/bin/python benchmarks/comparison_benchmark.py [--items N] [--documents N] [--warehouses N]

The simulator runs in its own process with limits too high to matter, holding a mid-size organization
(`_common.organization`: 5,000 items and 20,000 documents by default; the counts are printed). A full sync
fills a throwaway schema (not measured); then `compare_counts` runs for every entity of the registry with a
client named "statistics_comparison", as the daily job runs them. Printed per entity: Zoho's count, the
ERP's live rows, calls and seconds; then the totals and the p50/max per entity. Expected: one call per entity
(response_option=2), warehouses too (a settings list without a count: its ids are listed, one page).

Then a mismatch is planted through the simulator's admin routes (2 invoices created, 1 deleted) and the
invoices comparison runs again with no tolerance: it fails and lists Zoho's invoice ids to name the records
behind the difference, ceil(N/200) calls more than the count.
"""

from __future__ import annotations

import math
import statistics
import time

import requests
from _common import (
    UNLIMITED,
    full_sync,
    organization_from_args,
    simulator_client,
    simulator_process,
    throwaway_schema,
    unlimited_simulator_args,
)

from tds_pipelines.entities import ENTITIES, entity
from tds_pipelines.sync.counts import compare_counts

NEW_INVOICE_IDS = ("990000000000000001", "990000000000000002")


def plant_mismatch(url: str) -> str:
    """Create 2 invoices (copies of an existing one under new ids and numbers) and delete another one; returns
    the deleted id."""
    with requests.Session() as http:
        first, deleted = http.get(f"{url}/admin/invoices", timeout=30).json()["ids"][:2]
        record = http.get(f"{url}/admin/invoices/{first}", timeout=10).json()["record"]
        record.pop("created_time", None)
        for n, new_id in enumerate(NEW_INVOICE_IDS, 1):
            copy = record | {"invoice_number": f"INV-BENCH-{n}"}
            http.put(f"{url}/admin/invoices/{new_id}", json=copy, timeout=10).raise_for_status()
        http.delete(f"{url}/admin/invoices/{deleted}", timeout=10).raise_for_status()
    return deleted


def main() -> None:
    records = organization_from_args(__doc__.splitlines()[0])
    print("statistics comparison benchmark: compare_counts for every entity, after a full sync")
    print("records: " + ", ".join(f"{name} {n:,}" for name, n in records.items()))
    with simulator_process(*unlimited_simulator_args(records)) as url, throwaway_schema() as (engine, _):
        started = time.perf_counter()
        with simulator_client(url, engine, "full_sync", UNLIMITED) as client:
            full_sync(client, engine)
        print(f"full sync (not measured): {client.calls:,} calls, {time.perf_counter() - started:.0f}s\n")

        print(f"{'entity':18} {'zoho':>7} {'erp':>7} {'calls':>5} {'seconds':>8}  result")
        with simulator_client(url, engine, "statistics_comparison", UNLIMITED) as client:
            comparisons = [compare_counts(client, engine, spec) for spec in ENTITIES]
        for c in comparisons:
            result = "passed" if c.passed else f"FAILED (difference {c.difference})"
            print(f"{c.entity:18} {c.zoho_count:>7,} {c.erp_count:>7,} {c.api_calls:>5} {c.seconds:>8.3f}  {result}")
        seconds = [c.seconds for c in comparisons]
        print(
            f"{'total':18} {'':>7} {'':>7} {sum(c.api_calls for c in comparisons):>5} {sum(seconds):>8.3f}  "
            f"(client calls {client.calls}; per entity p50 {statistics.median(seconds):.3f}s, max {max(seconds):.3f}s)"
        )

        print("\n-- a failing comparison: 2 invoices created and 1 deleted in Zoho since the full sync --")
        deleted = plant_mismatch(url)
        with simulator_client(url, engine, "statistics_comparison", UNLIMITED) as client:
            failing = compare_counts(client, engine, entity("invoices"), tolerance=0)
        expected = 1 + math.ceil(failing.zoho_count / 200)
        print(
            f"invoices: Zoho {failing.zoho_count:,}, ERP {failing.erp_count:,}, passed {failing.passed}; "
            f"{failing.api_calls} calls (expected 1 count + ceil({failing.zoho_count}/200) = {expected}), "
            f"{failing.seconds:.3f}s"
        )
        print(f"missing in the ERP: {', '.join(failing.missing_in_erp)} (created {', '.join(NEW_INVOICE_IDS)})")
        print(f"missing in Zoho: {', '.join(failing.missing_in_zoho)} (deleted {deleted})")


if __name__ == "__main__":
    main()
