"""Webhook queue drain throughput on PostgreSQL: claim -> apply -> complete, against a bare claim-and-complete
loop of the same items and an item-per-transaction loop. Prints items/s and ratios.

    TDS_BENCH_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python benchmarks/drain_benchmark.py

Works in a throwaway schema that it drops at the end. 10,000 webhooks are queued (mixed entities: invoices,
sales orders, bills and credit notes with ~5 line items, contacts with persons, products, payments), then:
  (a) tds: one `drain` call (claim a batch of --batch-size, default the job's, apply it per entity with one
      COPY-based upsert each, a webhook's raw copied from its queue row, complete the batch in the same
      transaction; a writer thread writes one batch while the next is claimed and transformed) into empty
      ERP tables;
  (b) the floor: the same items claimed and completed by batch, nothing applied;
  (c) item per transaction: `drain` with batches of one, on a subset (--single-items, default 1,000) into
      empty tables, its items/s extrapolated to the full set.
Targets: (a) >= 3,000 items/s, (a) >= 10x (c), (a) >= 0.5x (b).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta

from _common import throwaway_schema
from sqlalchemy import text

from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.db import write_transaction
from tds_pipelines.erp.queue import COMPLETED, claim_ready, complete, enqueue_delivery, queue_counts
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables
from tds_pipelines.sync.apply import BATCH_SIZE, drain
from tds_pipelines.zoho.webhooks import parse_delivery

# What a day's webhooks look like: mostly documents and items.
MIX = {
    "invoices": 30,
    "products": 25,
    "sales_orders": 10,
    "customers": 8,
    "customer_payments": 7,
    "bills": 6,
    "credit_notes": 4,
    "vendors": 4,
    "stock_adjustments": 4,
    "users": 1,
    "warehouses": 1,
}
_NAMES = ["زيت زيتون", "أرز بسمتي", "Olive oil", "Basmati rice", "شاي أسود", "Black tea"]


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S+0300")


def _lines(n: int, rng: random.Random) -> list[dict]:
    return [
        {
            "line_item_id": str(rng.getrandbits(52)),
            "item_id": str(4815000000000000 + rng.randint(0, 5000)),
            "name": rng.choice(_NAMES),
            "description": "عبوة 12 × 500 غرام",
            "quantity": rng.randint(1, 40),
            "unit": "box",
            "rate": round(rng.uniform(1, 900), 2),
            "discount": 0,
            "tax_id": "4815000000044043",
            "tax_percentage": 5,
            "item_total": round(rng.uniform(10, 9000), 2),
            "warehouse_id": "4815000000000100",
        }
        for _ in range(n)
    ]


def record(name: str, n: int, rng: random.Random) -> dict:
    """A record as Zoho's webhook carries it (the registry's fields plus some of Zoho's others)."""
    spec = next(s for s in ENTITIES if s.name == name)
    modified = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**7))
    body = {
        spec.id_field: str(4815000000100000 + n),
        "last_modified_time": _stamp(modified),
        "created_time": _stamp(modified - timedelta(days=3)),
        "status": rng.choice(["draft", "sent", "paid", "active"]),
        "currency_code": "IQD",
        "notes": "شكراً لتعاملكم معنا — thank you for your business",
    }
    for col in spec.columns:
        if col.field not in body:
            body[col.field] = {
                "numeric": round(rng.uniform(0, 100000), 2),
                "date": (modified.date() - timedelta(days=rng.randint(0, 900))).isoformat(),
                "bool": rng.random() < 0.5,
            }.get(col.type, f"{col.field} {rng.choice(_NAMES)} {n}")
    for child in spec.children:
        lines = _lines(rng.randint(3, 7), rng)
        if child.table == "zoho_contact_persons":
            lines = [{"contact_person_id": line["line_item_id"], "first_name": line["name"]} for line in lines[:2]]
        body[child.field] = lines
    if name in ("customers", "vendors"):
        body["contact_type"] = name[:-1]
    return body


def queue_webhooks(engine, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    names = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    received = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:
        for n, name in enumerate(names):
            spec = next(s for s in ENTITIES if s.name == name)
            delivery = parse_delivery({spec.singular or spec.get_key: record(name, n, rng)}, entity=name)
            enqueue_delivery(conn, delivery, received + timedelta(microseconds=n))


def reset(engine, limit: int | None = None) -> None:
    """Every item (or the first `limit`) PENDING again, the others COMPLETED; ERP tables emptied; vacuumed."""
    tables = [t.name for t in entity_tables.values()] + [t.name for t in child_tables_by_name.values()]
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(tables)}"))
        conn.execute(
            text(
                "UPDATE tds_sync_queue SET status = CASE WHEN :limit IS NULL OR id <= (SELECT min(id) FROM "
                "tds_sync_queue) + :limit - 1 THEN 'PENDING' ELSE 'COMPLETED' END, next_attempt_at = received_at, "
                "locked_at = NULL, run_id = NULL, completed_at = NULL, attempts = 0"
            ),
            {"limit": limit},
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")


def bare_loop(engine, batch_size: int) -> int:
    done = 0
    while batch := claim_ready(engine, batch_size, "bare"):
        with write_transaction(engine) as conn:
            done += complete(conn, [item.id for item in batch])
    return done


def timed(fn, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--single-items", type=int, default=1_000)
    args = parser.parse_args()
    with throwaway_schema() as (engine, _schema):
        seconds, _ = timed(queue_webhooks, engine, args.items)
        print(f"queued {args.items:,} webhooks in {seconds:.1f}s (not measured)")

        reset(engine)
        bare_seconds, done = timed(bare_loop, engine, args.batch_size)
        assert done == args.items, done
        bare = args.items / bare_seconds

        reset(engine)
        drain_seconds, stats = timed(drain, engine, "bench", args.batch_size, 3600.0)
        assert queue_counts(engine)[COMPLETED] == args.items
        assert sum(s.inserted for s in stats.values()) == args.items, stats
        rate = args.items / drain_seconds

        reset(engine, args.single_items)
        single_seconds, stats = timed(drain, engine, "single", 1, 3600.0)
        assert sum(s.inserted for s in stats.values()) == args.single_items, stats
        single = args.single_items / single_seconds

    print(f"(a) drain, batches of {args.batch_size}: {rate:,.0f} items/s ({drain_seconds:.2f}s)")
    print(f"(b) bare claim + complete: {bare:,.0f} items/s ({bare_seconds:.2f}s)")
    print(f"(c) item per transaction: {single:,.0f} items/s ({args.single_items:,} items in {single_seconds:.2f}s)")
    targets = [
        ("(a) >= 3,000 items/s", rate, 3000, f"{rate:,.0f}"),
        ("(a) / (c) >= 10x", rate / single, 10, f"{rate / single:.1f}x"),
        ("(a) / (b) >= 0.5x", rate / bare, 0.5, f"{rate / bare:.2f}x"),
    ]
    for label, value, floor, shown in targets:
        print(f"{label}: {shown} {'ok' if value >= floor else 'SHORT'}")


if __name__ == "__main__":
    main()
