"""Upsert throughput on PostgreSQL: TDS's version-guarded bulk upsert against the practical limit and
against the old service's row-by-row pattern. Prints rows/s and ratios.

    TDS_BENCH_DATABASE_URL=postgresql+psycopg2://postgres@127.0.0.1:5432/test \\
        python benchmarks/upsert_benchmark.py

Works in a throwaway schema that it drops at the end. Figures:
  (a) tds upsert_rows: COPY -> temp table -> INSERT ... SELECT ... ON CONFLICT DO UPDATE WHERE <version guard>
      RETURNING (counts, ids), after de-duplicating the batch; an insert pass into an empty table, then an
      update pass where every row carries a newer version.
  (b) the practical limit: the same COPY into a temp table, then INSERT ... SELECT ... ON CONFLICT DO UPDATE
      with no guard, no RETURNING, no de-duplication.
  (c) the old service's pattern: one INSERT ... ON CONFLICT DO UPDATE and one COMMIT per row. It is timed on
      a subset (--row-by-row-rows, default 2,000) and its rows/s extrapolated to the full set.
Transforming records to rows (tds_pipelines.sync.transform.to_row) is timed separately and excluded from
(a), (b) and (c): all three write the same prepared rows.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, text

from tds_pipelines.entities import entity
from tds_pipelines.erp.db import json_dumps, make_engine
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.upsert import copy_rows, upsert_rows
from tds_pipelines.sync.transform import to_row

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
PRODUCTS = entity("products")

_ARABIC_NAMES = ["زيت زيتون", "أرز بسمتي", "سكر أبيض", "شاي أسود", "حليب مجفف", "معجون طماطم", "عدس أحمر"]
_ENGLISH_NAMES = ["Olive oil", "Basmati rice", "White sugar", "Black tea", "Milk powder", "Tomato paste"]
_UNITS = ["pcs", "box", "kg", "carton", "bottle"]
_OFFSETS = ["+0300", "-0800", "+0530", "+0000"]


def product_record(n: int, rng: random.Random, modified: datetime) -> dict:
    """A Zoho Inventory item as the list/detail returns it, about 1.5 KB of JSON."""
    item_id = str(4815000000000000 + n)
    arabic = rng.choice(_ARABIC_NAMES)
    english = rng.choice(_ENGLISH_NAMES)
    offset = rng.choice(_OFFSETS)
    stamp = modified.strftime("%Y-%m-%dT%H:%M:%S") + offset
    rate = round(rng.uniform(0.25, 950), 2)
    return {
        "item_id": item_id,
        "name": f"{arabic} / {english} {n}",
        "sku": f"SKU-{n:06d}",
        "status": rng.choice(["active", "active", "active", "inactive"]),
        "description": f"{arabic} — عبوة {rng.randint(1, 24)} × {rng.randint(100, 2000)} غرام\n"
        f'"{english}" pack, tab\there, back\\slash',
        "unit": rng.choice(_UNITS),
        "item_type": "inventory",
        "product_type": "goods",
        "is_taxable": True,
        "tax_id": "4815000000044043",
        "tax_name": "VAT",
        "tax_percentage": rng.choice([0, 5, 15]),
        "rate": rate,
        "purchase_rate": round(rate * 0.7, 2),
        "pricebook_rate": rate,
        "stock_on_hand": rng.choice([rng.randint(0, 5000), ""]),
        "available_stock": rng.randint(0, 5000),
        "actual_available_stock": rng.randint(0, 5000),
        "reorder_level": rng.choice([10, 20, ""]),
        "vendor_id": str(4815000000044080 + rng.randint(0, 50)),
        "vendor_name": rng.choice(["شركة النور للتجارة", "Al Rafidain Foods", "Baghdad Wholesale Co."]),
        "account_id": "4815000000000388",
        "account_name": "Sales",
        "purchase_account_id": "4815000000035003",
        "purchase_account_name": "Cost of Goods Sold",
        "inventory_account_id": "4815000000035001",
        "upc": str(rng.randint(10**11, 10**12 - 1)),
        "ean": str(rng.randint(10**12, 10**13 - 1)),
        "brand": rng.choice(["الريف", "Halwani", "Indomie"]),
        "manufacturer": "مصنع بغداد",
        "has_attachment": False,
        "image_name": f"item_{n}.jpg",
        "purchase_description": f"{english} — purchase from {rng.choice(['Basra', 'Erbil', 'Mersin'])} port",
        "package_details": {"length": 30, "width": 20, "height": 15, "weight": 1.2, "dimension_unit": "cm"},
        "sales_channels": [{"channel": "zoho_inventory"}, {"channel": "pos"}],
        "custom_fields": [
            {
                "customfield_id": "46000000012845",
                "label": "Origin",
                "value": rng.choice(["العراق", "تركيا", "Iran"]),
            },
            {"customfield_id": "46000000012846", "label": "Shelf life (days)", "value": rng.randint(30, 720)},
        ],
        "item_tax_preferences": [{"tax_id": "4815000000044043", "tax_specification": "intra"}],
        "created_time": "2021-03-01T09:15:00" + offset,
        "last_modified_time": stamp,
    }


def fresh_schema(url: str) -> str:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    upgrade(url, schema)
    return schema


def rows_for(records: list[dict], synced_at: datetime) -> list:
    return [to_row(PRODUCTS, r, synced_at) for r in records]


def time_ours(engine, rows) -> tuple[float, object]:
    started = time.perf_counter()
    with engine.begin() as conn:
        result = upsert_rows(conn, "products", rows)
    return time.perf_counter() - started, result


def time_copy_limit(engine, rows) -> float:
    table = "zoho_products"
    with engine.connect() as conn:
        columns = list(conn.exec_driver_sql(f"SELECT * FROM {table} LIMIT 0").keys())
    column_list = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c != "zoho_id")
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TEMPORARY TABLE bench_tmp (LIKE {table}) ON COMMIT DROP")
        copy_rows(conn, "bench_tmp", columns, ([row.values.get(c) for c in columns] for row in rows))
        conn.exec_driver_sql(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM bench_tmp "
            f"ON CONFLICT (zoho_id) DO UPDATE SET {updates}"
        )
    return time.perf_counter() - started


def time_row_by_row(engine, rows) -> float:
    """The old service: one statement and one commit per record."""
    columns = [c for c in rows[0].values]
    placeholders = ", ".join(f":{c}" for c in columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c != "zoho_id")
    statement = text(
        f"INSERT INTO zoho_products ({', '.join(columns)}) VALUES ({placeholders}) "
        f"ON CONFLICT (zoho_id) DO UPDATE SET {updates}"
    )
    started = time.perf_counter()
    with engine.connect() as conn:
        for row in rows:
            values = dict(row.values)
            values["raw"] = json_dumps(values["raw"])
            conn.execute(statement, values)
            conn.commit()
    return time.perf_counter() - started


def time_paged(engine, rows, page: int) -> float:
    """upsert_rows as the sync engine calls it: one transaction per page of `page` rows."""
    started = time.perf_counter()
    for start in range(0, len(rows), page):
        with engine.begin() as conn:
            upsert_rows(conn, "products", rows[start : start + page])
    return time.perf_counter() - started


def truncate(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE zoho_products")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE zoho_products")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--row-by-row-rows", type=int, default=2_000)
    parser.add_argument("--page", type=int, default=200, help="page size of the paged figure")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for (a) and (b)")
    args = parser.parse_args()
    url = os.environ.get("TDS_BENCH_DATABASE_URL", DEFAULT_URL)

    rng = random.Random(7)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    first = [product_record(n, rng, base + timedelta(seconds=n)) for n in range(args.rows)]
    newer = [{**r, "last_modified_time": "2026-06-01T00:00:00+0300", "rate": r["rate"] + 1} for r in first]
    raw_size = sum(len(json_dumps(r).encode()) for r in first) / len(first)
    started = time.perf_counter()
    insert_rows = rows_for(first, datetime.now(UTC))
    transform_s = time.perf_counter() - started
    update_rows = rows_for(newer, datetime.now(UTC))

    schema = fresh_schema(url)
    engine = make_engine(url, schema)
    where = url.split("@")[-1]
    print(f"PostgreSQL {where}, schema {schema}: {args.rows:,} product rows, raw JSON {raw_size:,.0f} B avg")
    print(f"transform (to_row, not counted below): {args.rows / transform_s:,.0f} rows/s")
    try:
        ours_insert, ours_update, copy_insert, copy_update = [], [], [], []
        for _ in range(args.repeat):
            truncate(engine)
            seconds, result = time_ours(engine, insert_rows)
            assert result.inserted == args.rows, result
            ours_insert.append(seconds)
            seconds, result = time_ours(engine, update_rows)
            assert result.updated == args.rows, result
            ours_update.append(seconds)
            truncate(engine)
            copy_insert.append(time_copy_limit(engine, insert_rows))
            copy_update.append(time_copy_limit(engine, update_rows))
        truncate(engine)
        paged_seconds = time_paged(engine, insert_rows, args.page)
        truncate(engine)
        subset = insert_rows[: args.row_by_row_rows]
        rbr_insert = time_row_by_row(engine, subset)
        rbr_update = time_row_by_row(engine, update_rows[: args.row_by_row_rows])
    finally:
        engine.dispose()
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    n = args.rows
    figures = {
        "insert": (n / min(ours_insert), n / min(copy_insert), len(subset) / rbr_insert),
        "update": (n / min(ours_update), n / min(copy_update), len(subset) / rbr_update),
    }
    print(f"\n{'pass':<8}{'(a) tds upsert_rows':>22}{'(b) COPY limit':>18}{'(c) row-by-row*':>18}{'a/b':>8}{'a/c':>9}")
    ok = True
    for name, (ours, limit, row_by_row) in figures.items():
        print(
            f"{name:<8}{ours:>16,.0f} r/s{limit:>12,.0f} r/s{row_by_row:>12,.0f} r/s"
            f"{ours / limit:>8.2f}{ours / row_by_row:>8.1f}x"
        )
        ok = ok and ours / limit >= 0.8 and ours / row_by_row >= 10
    print(f"\n* row-by-row: {len(subset):,} rows timed (one statement + commit each), rows/s extrapolated;")
    print(f"  (a) and (b): best of {args.repeat}, {n:,} rows in one transaction each.")
    print(
        f"  for reference, (a) in {args.page}-row pages, one transaction (commit) each: "
        f"{n / paged_seconds:,.0f} r/s insert"
    )
    print("targets: a/b >= 0.8, a/c >= 10:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
