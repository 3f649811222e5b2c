"""The sync engine end to end: the simulator over real HTTP, PostgreSQL, checks via a separate connection."""

from __future__ import annotations

import calendar
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from tds_pipelines.entities import ENTITIES, entity
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, item_stock, sync_queue
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines.sync.stock import listing_due, sync_item_stock
from tds_pipelines_tests.sync_fixtures import (
    admin,
    client_for,
    count_rows,
    fresh_erp,
    row_count,
    simulator,
    zoho_record,
)

FULL, INCREMENTAL = Scope("full"), Scope("incremental")


@pytest.fixture(scope="module")
def sim():
    with simulator(records=40, entity_records={"invoices": 120}) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_refresh_allowance(request):
    """Each test is a new TDS installation (its own token cache) against the module's Zoho: let it start, as
    a new day would, with Zoho's 10-refreshes-per-10-minutes allowance unspent. Tests of the throttle itself
    live with the client's tests."""
    if "sim" in request.fixturenames:
        admin(request.getfixturevalue("sim"), "POST", "reset-limits")


def zoho_ids(client, spec) -> set[str]:
    """Every id Zoho lists for `spec` (Status.All where the entity knows it): the truth to compare with."""
    params = dict(spec.list_params) | ({"filter_by": "Status.All"} if spec.status_all else {})
    return {
        str(r[spec.id_field])
        for r in client.list_records(spec.api, spec.path, spec.list_key, params, id_field=spec.id_field)
    }


def test_full_sync_of_every_entity_fills_the_erp(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    for spec in ENTITIES:
        stats = sync_entity(spec, client, engine, FULL)
        assert stats.complete and stats.rejected == 0, stats.errors
        truth = zoho_ids(client, spec)
        assert truth, f"the simulator lists no {spec.name}"
        with observer.connect() as conn:
            stored = set(conn.execute(select(entity_tables[spec.name].c.zoho_id)).scalars())
        assert stored == truth, spec.name
        assert stats.inserted == len(truth)
        for child in spec.children:
            assert row_count(observer, child_tables_by_name[child.table]) > 0, child.table
    stock = sync_item_stock(client, engine, full=True)
    assert stock.complete and stock.inserted > 0
    assert row_count(observer, item_stock) == stock.inserted
    # Typed columns hold typed values; the raw record is kept whole.
    invoices = entity_tables["invoices"]
    with observer.connect() as conn:
        row = conn.execute(select(invoices).where(invoices.c.total.is_not(None)).limit(1)).mappings().one()
    assert isinstance(row["date"], date) and row["raw"]["invoice_id"] == row["zoho_id"]
    assert "line_items" in row["raw"]


def test_second_sync_fetches_details_only_for_changed_records(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("invoices")
    first = sync_entity(spec, client, engine, FULL)
    assert first.detail_calls == first.fetched
    some = sorted(zoho_ids(client, spec))[:3]
    for zoho_id in some:
        record = zoho_record(sim, "invoices", zoho_id)
        admin(sim, "PUT", f"invoices/{zoho_id}", {**record, "reference_number": "edited"})
    again = sync_entity(spec, client, engine, FULL)
    assert again.detail_calls == 3 and again.updated == 3
    assert again.unchanged == again.fetched - 3


def test_incremental_run_catches_an_edit_to_an_old_document(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("invoices")
    sync_entity(spec, client, engine, FULL)
    table = entity_tables["invoices"]
    with observer.connect() as conn:
        oldest = conn.execute(select(table.c.zoho_id, table.c.raw).order_by(table.c.date).limit(1)).one()
    admin(sim, "PUT", f"invoices/{oldest.zoho_id}", {**oldest.raw, "total": 4242.5, "line_items": []})
    calls_before = client.calls
    stats = sync_entity(spec, client, engine, INCREMENTAL)
    assert stats.updated == 1 and stats.detail_calls == 1
    assert client.calls - calls_before == 2  # one list call, one detail call
    with observer.connect() as conn:
        total = conn.execute(select(table.c.total).where(table.c.zoho_id == oldest.zoho_id)).scalar_one()
        lines = child_tables_by_name["zoho_invoice_line_items"]
        left = conn.execute(select(lines.c.position).where(lines.c.parent_zoho_id == oldest.zoho_id)).all()
    assert float(total) == 4242.5 and left == []


def test_incremental_run_without_changes_costs_one_list_call_per_filtered_entity(sim, erp):
    engine, _ = erp
    client = client_for(sim, engine)
    filtered = [spec for spec in ENTITIES if spec.strategy == "modified_since"]
    for spec in filtered:
        sync_entity(spec, client, engine, FULL)
    for spec in filtered:
        stats = sync_entity(spec, client, engine, INCREMENTAL)
        assert (stats.api_calls, stats.inserted, stats.updated) == (1, 0, 0), spec.name


def test_incremental_run_of_a_date_window_entity_lists_only_its_window_once_listed_whole(erp):
    """Customer payments have no change filter: after a complete listing, an hourly run re-lists the last
    `window_days` only (it used to list them all every hour: a date-window entity has no cursor)."""
    engine, _ = erp
    spec = entity("customer_payments")
    with simulator(records=5, entity_records={"customer_payments": 450}) as sim:
        client = client_for(sim, engine)
        first = sync_entity(spec, client, engine, INCREMENTAL)  # never listed: listed whole
        hourly = sync_entity(spec, client, engine, INCREMENTAL)
    assert first.fetched == first.inserted == 450
    assert hourly.api_calls == 1 and hourly.fetched < 200, (hourly.api_calls, hourly.fetched)


def test_deleted_record_is_tombstoned_and_revived(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("customers")
    sync_entity(spec, client, engine, FULL)
    victim = sorted(zoho_ids(client, spec))[0]
    record = zoho_record(sim, "customers", victim)
    admin(sim, "DELETE", f"customers/{victim}")
    stats = sync_entity(spec, client, engine, FULL)
    assert stats.tombstoned == 1
    where = f"WHERE zoho_id = '{victim}' AND deleted_in_zoho_at IS NOT NULL"
    assert count_rows(observer, "zoho_customers", where) == 1
    admin(sim, "PUT", f"customers/{victim}", record)
    sync_entity(spec, client, engine, FULL)
    assert count_rows(observer, "zoho_customers", where) == 0


def test_partition_window_run_syncs_and_tombstones_only_its_months(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("invoices")
    sync_entity(spec, client, engine, FULL)
    table = entity_tables["invoices"]
    with observer.connect() as conn:
        rows = conn.execute(select(table.c.zoho_id, table.c.date).order_by(table.c.date)).all()
    month = rows[len(rows) // 2].date.replace(day=1)
    window = Scope("window", month, month.replace(day=calendar.monthrange(month.year, month.month)[1]))
    inside = [r.zoho_id for r in rows if window.start <= r.date <= window.end]
    outside = next(r.zoho_id for r in rows if r.date < window.start)
    for zoho_id in (inside[0], outside):
        admin(sim, "DELETE", f"invoices/{zoho_id}")
    stats = sync_entity(spec, client, engine, window)
    assert stats.complete and stats.fetched == len(inside) - 1
    assert stats.tombstoned == 1
    tombstoned = count_rows(observer, "zoho_invoices", "WHERE deleted_in_zoho_at IS NOT NULL")
    assert tombstoned == 1
    assert count_rows(observer, "zoho_invoices", f"WHERE zoho_id = '{outside}' AND deleted_in_zoho_at IS NULL") == 1


def test_token_expiry_in_the_middle_of_a_sync(erp):
    engine, observer = erp
    with simulator(records=60, rate_limit_per_minute=600) as sim:
        client = client_for(sim, engine, per_minute=600)
        spec = entity("invoices")
        result = {}
        worker = threading.Thread(target=lambda: result.update(stats=sync_entity(spec, client, engine, FULL)))
        worker.start()
        deadline = time.monotonic() + 30
        while admin(sim, "GET", "stats")["api_calls"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        admin(sim, "POST", "expire-tokens")
        worker.join(timeout=120)
        assert not worker.is_alive()
        stats = admin(sim, "GET", "stats")
    assert result["stats"].complete
    assert stats["token_refreshes"] == 2
    assert row_count(observer, entity_tables["invoices"]) == result["stats"].fetched == 60


@pytest.mark.parametrize("kind", ["500", "503", "malformed", "duplicate", "timeout"])
def test_each_fault_kind_is_survived_without_loss(erp, kind):
    engine, observer = erp
    with simulator(records=450) as sim:
        client = client_for(sim, engine, timeout=2)
        fault = {"kind": kind, "count": 2, "path_contains": "/invoices"}
        if kind == "timeout":
            fault["delay_seconds"] = 4
        admin(sim, "POST", "faults", fault)
        stats = sync_entity(entity("invoices"), client, engine, FULL)
    assert stats.complete and row_count(observer, entity_tables["invoices"]) == 450
    if kind == "duplicate":
        assert stats.duplicates >= 1


def test_bad_record_is_kept_as_a_dead_letter_and_nothing_else_is_lost(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("bills")
    victim = sorted(zoho_ids(client, spec))[0]
    record = zoho_record(sim, "bills", victim)
    admin(sim, "PUT", f"bills/{victim}", {**record, "total": "9" * 30})
    stats = sync_entity(spec, client, engine, FULL)
    assert stats.rejected == 1 and victim in stats.errors[0]
    assert row_count(observer, entity_tables["bills"]) == stats.fetched - 1
    with observer.connect() as conn:
        letter = conn.execute(select(sync_queue).where(sync_queue.c.zoho_id == victim)).mappings().one()
    assert letter["status"] == "DEAD_LETTER" and "total" in letter["last_error"]
    assert letter["payload"]["bill_id"] == victim


def test_sqlite_smoke_full_and_incremental(sim, tmp_path):
    engine, observer, _ = fresh_erp(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    client = client_for(sim, engine)
    for name in ("products", "customers", "invoices", "price_lists"):
        spec = entity(name)
        stats = sync_entity(spec, client, engine, FULL)
        assert stats.complete and row_count(observer, entity_tables[name]) == len(zoho_ids(client, spec))
        assert sync_entity(spec, client, engine, INCREMENTAL).inserted == 0
    assert sync_item_stock(client, engine, full=True).inserted > 0


def test_bad_records_from_fixtures_are_kept_with_their_reasons(erp, tmp_path):
    """A page mixing good and bad records: the good ones land, each bad one is a dead letter naming it."""
    engine, observer = erp
    good = {
        "invoice_id": "900000000000001",
        "invoice_number": "INV-1",
        "date": "2024-05-02",
        "total": 10,
        "last_modified_time": "2024-05-02T10:00:00+0300",
        "line_items": [],
    }
    bad_version = {**good, "invoice_id": "900000000000002", "last_modified_time": "yesterday-ish"}
    too_large = {**good, "invoice_id": "900000000000003", "total": "1" + "0" * 25}
    (tmp_path / "invoices.json").write_text(json.dumps([good, bad_version, too_large]))
    with simulator(fixtures_dir=str(tmp_path), records=3) as sim:
        stats = sync_entity(entity("invoices"), client_for(sim, engine), engine, FULL)
    assert stats.complete and (stats.inserted, stats.rejected) == (1, 2)
    with observer.connect() as conn:
        query = select(sync_queue.c.zoho_id, sync_queue.c.last_error).where(sync_queue.c.entity == "invoices")
        letters = {row.zoho_id: row.last_error for row in conn.execute(query)}
    assert set(letters) == {"900000000000002", "900000000000003"}
    assert "last_modified_time" in letters["900000000000002"] and "total" in letters["900000000000003"]
    assert count_rows(observer, "zoho_invoices", "WHERE zoho_id = '900000000000001'") == 1


def test_stock_sync_between_daily_listings_refreshes_only_touched_items(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    for name in ("products", "invoices"):
        sync_entity(entity(name), client, engine, FULL)
    listing = sync_item_stock(client, engine)  # first run: the per-warehouse listing
    assert listing.scope == "full" and listing.inserted > 0
    invoice_id = sorted(zoho_ids(client, entity("invoices")))[0]
    record = zoho_record(sim, "invoices", invoice_id)
    touched = {line["item_id"] for line in record["line_items"]}
    admin(sim, "PUT", f"invoices/{invoice_id}", {**record, "reference_number": "touched"})
    sync_entity(entity("invoices"), client, engine, INCREMENTAL)
    refresh = sync_item_stock(client, engine)  # same day: only what changed since the last run
    assert refresh.scope == "touched items" and refresh.complete
    assert refresh.api_calls == 1  # one /itemdetails call covers up to 100 items
    warehouses = len(zoho_ids(client, entity("warehouses")))
    assert refresh.fetched == len(touched) * warehouses
    assert refresh.updated == refresh.fetched


def test_the_stock_sync_leaves_the_warehouse_listing_to_the_daily_full_sync_unless_it_missed_a_day():
    now = datetime(2026, 11, 28, 0, 15, tzinfo=UTC)
    assert listing_due(None, now)
    # Listed by yesterday's 02:00 full sync: the 00:15 stock tick does not list again (a calendar-day rule did,
    # and the 02:00 full sync then listed a second time).
    assert not listing_due(now - timedelta(hours=22, minutes=15), now)
    assert listing_due(now - timedelta(hours=27), now)  # the full sync missed a day


def test_a_job_over_its_daily_share_skips_with_its_reason_and_keeps_its_cursor(sim, erp):
    engine, observer = erp
    spec = entity("invoices")
    shares = {"incremental_sync": 0.5, "other": 0.5}  # nothing to borrow: the other half is other jobs' floor
    stingy = client_for(sim, engine, job="incremental_sync", daily_limit=10, shares=shares)
    stats = sync_entity(spec, stingy, engine, INCREMENTAL)
    assert not stats.complete and stats.api_calls == 5
    assert "incremental_sync" in stats.skipped_reason and "5" in stats.skipped_reason
    assert stats.as_metadata()["skipped_reason"] == stats.skipped_reason
    assert count_rows(observer, "tds_sync_state") == 0  # nothing claims the listing finished
    assert count_rows(observer, "zoho_invoices", "WHERE deleted_in_zoho_at IS NOT NULL") == 0


def test_stock_item_that_cannot_be_stored_is_kept_and_the_rest_applied(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    victim = sorted(zoho_ids(client, entity("products")))[0]
    record = zoho_record(sim, "products", victim)
    record["warehouses"] = [{**w, "warehouse_stock_on_hand": "9" * 30} for w in record["warehouses"]]
    admin(sim, "PUT", f"products/{victim}", record)
    stats = sync_item_stock(client, engine, full=True)
    assert stats.complete and stats.rejected == len(record["warehouses"]) and stats.inserted > 0
    assert count_rows(observer, "zoho_item_stock", f"WHERE item_id = '{victim}'") == 0
    assert count_rows(observer, "tds_sync_queue", f"WHERE entity = 'item_stock' AND zoho_id = '{victim}'") == len(
        record["warehouses"]
    )
