"""Stock on hand per item and warehouse (`zoho/item_stock`).

Zoho's budget cannot afford listing every warehouse every 15 minutes (ceil(N/200) calls per warehouse), so:
- once a day the per-warehouse listing (`/items?warehouse_id=`) refreshes everything; stock rows it did
  not show are tombstoned once `/itemdetails` confirms them gone;
- in between, only items touched since the last run (products written, or items on line items of
  documents and adjustments written since then, by any path) are refreshed through `/itemdetails`, 100 ids
  a call. "Since" reads ``written_at`` (the database's clock at each write) from the last run's write
  horizon: a sync whose page transaction was still open when the last run looked is seen now.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, union

from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp import state as sync_state
from tds_pipelines.erp.db import write_horizon
from tds_pipelines.erp.locks import sync_lock
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, item_stock
from tds_pipelines.erp.upsert import missing_ids, tombstone_ids, upsert_rows
from tds_pipelines.sync.engine import mass_deletion, reject_record
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.transform import item_stock_row_from_listing, item_stock_rows
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.errors import BudgetShareExceeded

STATE_KEY = "item_stock"
LISTING_EVERY = timedelta(hours=26)  # a day and the full sync's slack
WRITE_BATCH = 1000


def touched_item_ids(engine: Engine, since: datetime) -> tuple[list[str], datetime]:
    """Items written at or after `since`: products themselves, and items on line items of documents written
    since; with the write horizon of the look (the next run's `since`)."""
    products = entity_tables["products"]
    queries = [select(products.c.zoho_id.label("item_id")).where(products.c.written_at >= since)]
    for spec in ENTITIES:
        for child in spec.children:
            if child.field != "line_items":
                continue
            parent, lines = entity_tables[spec.name], child_tables_by_name[child.table]
            queries.append(
                select(lines.c.item_id)
                .join(parent, parent.c.zoho_id == lines.c.parent_zoho_id)
                .where(parent.c.written_at >= since, lines.c.item_id.is_not(None))
            )
    with engine.connect() as conn:
        looked_at = write_horizon(conn)
        return sorted({row.item_id for row in conn.execute(union(*queries))}), looked_at


def listing_due(last_full: datetime | None, now: datetime) -> bool:
    """Whether the stock sync lists every warehouse itself: the daily full sync does (at 02:00), so only
    when none has for LISTING_EVERY (a day it skipped or failed). A calendar-day rule listed twice a day:
    at the first stock tick after midnight, then again in the full sync."""
    return last_full is None or now - last_full > LISTING_EVERY


def sync_item_stock(
    client: ZohoClient, engine: Engine, run_id: str | None = None, full: bool | None = None
) -> SyncStats:
    """Refresh stock per warehouse: the daily full listing when due (or `full`), else the touched items."""
    started, calls_before = time.monotonic(), client.calls
    now = datetime.now(UTC)
    with engine.connect() as conn:
        current = sync_state.read_state(conn, STATE_KEY)
    if full is None:
        full = current is None or current.cursor is None or listing_due(current.last_full_sync_at, now)
    stats = SyncStats(entity=STATE_KEY, scope="full" if full else "touched items")
    with sync_lock(engine, STATE_KEY) as taken:
        if not taken:
            stats.skip("busy", "another run is refreshing stock right now; this run leaves it to that one")
            return stats
        try:
            if full:
                with engine.connect() as conn:
                    cursor = write_horizon(conn)
                _list_every_warehouse(client, engine, now, stats)
            else:
                cursor = _refresh_touched(client, engine, current.cursor, now, stats)
            stats.complete = True
        except BudgetShareExceeded as exc:
            stats.skip("budget", str(exc))
        stats.api_calls = client.calls - calls_before
        stats.seconds = time.monotonic() - started
        if stats.complete:
            with engine.begin() as conn:
                sync_state.advance_cursor(conn, STATE_KEY, cursor, run_id, stats.as_metadata(), full=full)
    return stats


def _list_every_warehouse(client: ZohoClient, engine: Engine, now: datetime, stats: SyncStats) -> None:
    warehouses = [
        record
        for page in client.list_pages("inventory", "/settings/warehouses", "warehouses", {}, id_field="warehouse_id")
        for record in page.records
        if isinstance(record, dict)
    ]
    listed: set[str] = set()
    for warehouse in warehouses:
        warehouse_id = str(warehouse["warehouse_id"])
        params = {"warehouse_id": warehouse_id, "filter_by": "Status.All"}
        for page in client.list_pages("inventory", "/items", "items", params, id_field="item_id"):
            stats.pages += 1
            name = warehouse.get("warehouse_name")
            rows = [
                row
                for item in page.records
                for row in _rows_or_reject(engine, stats, item, _listing_rows, warehouse_id, now, name)
            ]
            listed.update(row.zoho_id for row in rows)
            _write(engine, rows, stats)
    _tombstone_confirmed(client, engine, listed, now, stats)


def _tombstone_confirmed(client: ZohoClient, engine: Engine, listed: set[str], now: datetime, stats) -> None:
    """Stock rows the listing did not show are tombstoned once `/itemdetails` confirms them: the item is
    gone, or no longer stocked in that warehouse. Rows it still shows are refreshed instead."""
    with engine.begin() as conn:
        candidates, live = missing_ids(conn, item_stock, listed)
    if not candidates:
        return
    if warning := mass_deletion("stock rows", len(candidates), live, listed_any=bool(listed)):
        stats.tombstones_refused = len(candidates)
        stats.notes.append(warning)
        return
    calls_before = client.calls
    rows = []
    for item in client.item_details(sorted({zoho_id.split(":", 1)[0] for zoho_id in candidates})):
        rows.extend(_rows_or_reject(engine, stats, item, item_stock_rows, now))
    stats.confirm_calls += client.calls - calls_before
    stats.confirmed_live += sum(row.zoho_id in set(candidates) for row in rows)
    _write(engine, rows, stats)
    with engine.begin() as conn:
        stats.tombstoned += tombstone_ids(conn, item_stock, set(candidates) - {row.zoho_id for row in rows})


def _refresh_touched(client: ZohoClient, engine: Engine, since: datetime, now: datetime, stats) -> datetime:
    """Refresh the items touched since `since`; returns when the database was looked at."""
    touched, looked_at = touched_item_ids(engine, since)
    rows = []
    for item in client.item_details(touched):
        rows.extend(_rows_or_reject(engine, stats, item, item_stock_rows, now))
        if len(rows) >= WRITE_BATCH:
            _write(engine, rows, stats)
            rows = []
    _write(engine, rows, stats)
    return looked_at


def _listing_rows(item: dict, warehouse_id: str, now: datetime, name: str | None) -> list:
    return [item_stock_row_from_listing(item, warehouse_id, now, name)]


def _rows_or_reject(engine: Engine, stats: SyncStats, item: object, build: Callable[..., list], *args) -> list:
    """`build(item, *args)`: the item's stock rows, or none when the item cannot be stored (whatever the
    error); it is then kept as a dead letter with its reason and the rest of the page goes on."""
    try:
        return build(item, *args)
    except Exception as exc:  # noqa: BLE001 - one item never stops the stock sync
        item_id = str(item.get("item_id") or "") or None if isinstance(item, dict) else None
        reject_record(engine, stats, item_id, item, f"item_stock of item {item_id}: {exc}")
        return []


def _write(engine: Engine, rows: list, stats: SyncStats) -> None:
    stats.fetched += len(rows)
    if not rows:
        return
    with engine.begin() as conn:
        result = upsert_rows(conn, item_stock, rows)
    stats.inserted += result.inserted
    stats.updated += result.updated
    stats.stale += result.stale
