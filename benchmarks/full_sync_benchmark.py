"""Full sync of 50,000 products and 10,000 invoices from the simulator (no rate limit) into PostgreSQL.

    .venv/bin/python benchmarks/full_sync_benchmark.py [--products N] [--invoices N]

Prints records/s, peak memory of this process, API calls against the minimum (ceil(N/200) list calls plus
one detail call per record of an entity whose list is abridged: invoices, whose line items come only with
the GET; products need none, their list carries every product column), then a second sync after 1% of the
records changed, an incremental run with no change, a full sync after deletions (tombstones are confirmed
by one GET each) and three overlapping full syncs against one alone (the same calls: one does the work).
Baseline measured in the same run: paging through the same lists with no database work, the speed the
API alone allows.
"""

from __future__ import annotations

import argparse
import math
import resource
import threading
import time

import requests
from _common import simulator_client, simulator_process, stats, throwaway_schema

from tds_pipelines.entities import entity
from tds_pipelines.sync.engine import Scope, sync_entity

UNLIMITED = 10**9


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def list_only(client, spec) -> tuple[int, float]:
    started = time.perf_counter()
    params = dict(spec.list_params) | ({"filter_by": "Status.All"} if spec.status_all else {})
    n = sum(1 for _ in client.list_records(spec.api, spec.path, spec.list_key, params, id_field=spec.id_field))
    return n, time.perf_counter() - started


def change_some(url: str, name: str, ids: list[str]) -> None:
    with requests.Session() as http:
        for zoho_id in ids:
            record = http.get(f"{url}/admin/{name}/{zoho_id}", timeout=10).json()["record"]
            record["reference_number"] = f"changed {time.time()}"
            http.put(f"{url}/admin/{name}/{zoho_id}", json=record, timeout=10).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--invoices", type=int, default=10_000)
    args = parser.parse_args()
    counts = {"products": args.products, "invoices": args.invoices}
    sim_args = [
        "--records",
        "5",
        "--rate-limit-per-minute",
        "0",
        "--daily-limit",
        "0",
        "--concurrency-limit",
        "0",
    ]
    for name, n in counts.items():
        sim_args += ["--entity-records", f"{name}={n}"]
    print(f"full sync benchmark: {args.products} products, {args.invoices} invoices, simulator without limits")
    with simulator_process(*sim_args) as url, throwaway_schema() as (engine, _):
        client = simulator_client(url, engine, "full_sync", UNLIMITED)
        baseline = {name: list_only(client, entity(name)) for name in counts}
        print(f"peak memory after the baseline listing: {peak_mb():.0f} MB")
        print("\n-- first full sync --")
        total_records, total_seconds, first = 0, 0.0, {}
        for name in counts:
            spec = entity(name)
            s = sync_entity(spec, client, engine, Scope("full"))
            first[name] = s
            n = counts[name]
            expected = math.ceil(n / 200) + (n if spec.needs_detail else 0)
            listed_n, listed_s = baseline[name]
            print(
                f"{name:9} {s.fetched} records in {s.seconds:.1f}s = {s.fetched / s.seconds:,.0f} records/s; "
                f"API calls {s.api_calls} (list {s.pages}, detail {s.detail_calls}; minimum {expected}); "
                f"inserted {s.inserted}"
            )
            print(
                f"{'':9} baseline list-only paging: {listed_n / listed_s:,.0f} records/s "
                f"-> sync/list-only ratio {(s.fetched / s.seconds) / (listed_n / listed_s):.2f}"
                + ("" if spec.needs_detail else "")
            )
            total_records += s.fetched
            total_seconds += s.seconds
        print(f"overall: {total_records / total_seconds:,.0f} records/s, peak memory {peak_mb():.0f} MB (limit 400)")

        print("\n-- second sync after 1% of the records changed --")
        changed = {}
        for name, n in counts.items():
            with engine.connect() as conn:
                ids = [r[0] for r in conn.exec_driver_sql(f"SELECT zoho_id FROM zoho_{name} LIMIT {n // 100}")]
            change_some(url, name, ids)
            changed[name] = len(ids)
        for name in counts:
            s = sync_entity(entity(name), client, engine, Scope("incremental"))
            print(
                f"{name:9} changed {changed[name]}: detail calls {s.detail_calls}, updated {s.updated}, "
                f"list calls {s.pages}, API calls {s.api_calls}, {s.seconds:.1f}s"
            )
        print("\n-- incremental run with no change --")
        for name in counts:
            s = sync_entity(entity(name), client, engine, Scope("incremental"))
            print(f"{name:9} API calls {s.api_calls} (one list call per entity with a change filter expected)")
        print("\n-- full sync after 10 records of each entity were deleted in Zoho --")
        for name in counts:
            with engine.connect() as conn:
                ids = [r[0] for r in conn.exec_driver_sql(f"SELECT zoho_id FROM zoho_{name} ORDER BY zoho_id LIMIT 10")]
            for zoho_id in ids:
                requests.delete(f"{url}/admin/{name}/{zoho_id}", timeout=10).raise_for_status()
            s = sync_entity(entity(name), client, engine, Scope("full"))
            print(
                f"{name:9} tombstoned {s.tombstoned}; API calls {s.api_calls} = list {s.pages} + detail "
                f"{s.detail_calls} + confirmation GETs {s.confirm_calls}"
            )
        print("\n-- three overlapping full syncs of invoices, against one alone --")
        before = stats(url)["api_calls"]
        alone = sync_entity(entity("invoices"), client, engine, Scope("full"))
        one = stats(url)["api_calls"] - before
        clients = [simulator_client(url, engine, "full_sync", UNLIMITED) for _ in range(3)]
        results = []
        threads = [
            threading.Thread(
                target=lambda c=c: results.append(sync_entity(entity("invoices"), c, engine, Scope("full")))
            )
            for c in clients
        ]
        before, started = stats(url)["api_calls"], time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        three, seconds = stats(url)["api_calls"] - before, time.perf_counter() - started
        busy = sum(r.skipped == "busy" for r in results)
        print(
            f"one alone: {one} calls, {alone.seconds:.1f}s; three at once: {three} calls, {seconds:.1f}s "
            f"({busy} left it to the one holding the lock); calls ratio {three / one:.2f}, time ratio "
            f"{seconds / alone.seconds:.2f}"
        )
        sim = stats(url)
        print(f"\nsimulator: {sim.get('api_calls')} API calls served, token refreshes {sim.get('token_refreshes')}")
        print(f"peak memory of the syncing process: {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
