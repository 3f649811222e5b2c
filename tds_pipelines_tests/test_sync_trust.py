"""Pull sync you can trust: no change missed, no live record tombstoned, no stall on one bad record.

Each test drives the simulator as a Zoho user (admin routes, faults that change data between two pages)
and asserts on what PostgreSQL holds, read through a separate connection.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import select, text

from tds_pipelines.entities import entity
from tds_pipelines.erp.tables import entity_tables, sync_queue
from tds_pipelines.erp.upsert import upsert_rows
from tds_pipelines.sync.engine import Scope, _newest_copies, _with_ids, sync_entity
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.stock import sync_item_stock
from tds_pipelines.sync.transform import to_row
from tds_pipelines_tests.sync_fixtures import admin, client_for, count_rows, simulator, zoho_record

FULL, INCREMENTAL = Scope("full"), Scope("incremental")


def stored(observer, name: str, zoho_id: str, column: str):
    table = entity_tables[name]
    with observer.connect() as conn:
        return conn.execute(select(table.c[column]).where(table.c.zoho_id == zoho_id)).scalar_one_or_none()


def dead_letters(observer, name: str) -> list:
    with observer.connect() as conn:
        query = select(sync_queue.c.zoho_id, sync_queue.c.last_error).where(sync_queue.c.entity == name)
        return list(conn.execute(query))


def first_id(sim, name: str) -> str:
    return sorted(admin(sim, "GET", name)["ids"])[0]


# -- 1. changes that were missed ------------------------------------------------------------------------


def test_second_edit_on_the_same_day_is_stored_when_versions_are_bare_dates(erp):
    engine, observer = erp
    with simulator(records=20, version_style={"products": "date", "invoices": "date"}) as sim:
        client = client_for(sim, engine)
        for name in ("products", "invoices"):
            sync_entity(entity(name), client, engine, FULL)
            victim = first_id(sim, name)
            field = "name" if name == "products" else "reference_number"
            admin(sim, "PATCH", f"{name}/{victim}", {field: "second edit today"})
            for scope in (INCREMENTAL, FULL):
                admin(sim, "PATCH", f"{name}/{victim}", {field: f"edit seen by {scope.kind}"})
                stats = sync_entity(entity(name), client, engine, scope)
                assert stats.updated == 1, (name, scope, stats.summary())
                assert stored(observer, name, victim, "raw")[field] == f"edit seen by {scope.kind}"


def test_two_edits_within_one_second_are_both_stored(erp):
    engine, observer = erp
    with simulator(records=10) as sim:
        client = client_for(sim, engine)
        spec = entity("products")
        sync_entity(spec, client, engine, FULL)
        victim = first_id(sim, "products")
        for attempt in range(5):  # bounded: the two edits must land in one wall-clock second
            while time.time() % 1 > 0.2:
                time.sleep(0.01)
            first = admin(sim, "PATCH", f"products/{victim}", {"name": f"first {attempt}"})["record"]
            sync_entity(spec, client, engine, INCREMENTAL)
            second = admin(sim, "PATCH", f"products/{victim}", {"name": f"second {attempt}"})["record"]
            if first["last_modified_time"] == second["last_modified_time"]:
                break
        else:
            pytest.fail("could not make two edits within one second")
        stats = sync_entity(spec, client, engine, INCREMENTAL)
    assert stats.updated == 1 and stored(observer, "products", victim, "name") == f"second {attempt}"


def test_a_get_without_last_modified_time_does_not_lose_the_edit_nor_refetch_forever(erp):
    engine, observer = erp
    with simulator(records=15, version_style={"invoices": "list_only"}) as sim:
        client = client_for(sim, engine)
        spec = entity("invoices")
        sync_entity(spec, client, engine, FULL)
        victim = first_id(sim, "invoices")
        admin(sim, "PATCH", f"invoices/{victim}", {"reference_number": "edited"})
        edited = sync_entity(spec, client, engine, INCREMENTAL)
        again = sync_entity(spec, client, engine, FULL)
    assert (edited.updated, edited.stale) == (1, 0)
    assert stored(observer, "invoices", victim, "raw")["reference_number"] == "edited"
    assert again.detail_calls == 0 and again.updated == 0


def test_lists_without_any_version_field_sync_by_content_and_list_whole(erp):
    engine, observer = erp
    with simulator(records=12, version_style={"stock_adjustments": "none"}) as sim:
        client = client_for(sim, engine)
        spec = entity("stock_adjustments")
        first = sync_entity(spec, client, engine, FULL)
        victim = first_id(sim, "stock_adjustments")
        admin(sim, "PATCH", f"stock_adjustments/{victim}", {"reason": "recount"})
        stats = sync_entity(spec, client, engine, INCREMENTAL)
    assert first.inserted == 12 and stats.fetched == 12  # no sort field to stop at: the whole list
    assert stats.updated == 1 and stats.detail_calls == 1
    assert any("carries no last_modified_time" in note for note in stats.notes)
    assert stored(observer, "stock_adjustments", victim, "reason") == "recount"


def test_newest_copy_of_a_record_listed_twice_wins_and_non_objects_become_dead_letters(erp, tmp_path):
    engine, observer = erp
    old = {"item_id": "7001", "name": "old", "last_modified_time": "2024-01-01T10:00:00+0300"}
    new = {**old, "name": "new", "last_modified_time": "2024-01-02T10:00:00+0300"}
    (tmp_path / "products.json").write_text(json.dumps([new]))
    with simulator(fixtures_dir=str(tmp_path), records=0) as sim:
        stats = SyncStats("products", "full")
        records = _with_ids(entity("products"), engine, [new, 42, "text", old, {"name": "no id"}], stats)
        kept = _newest_copies(entity("products"), records, stats)
        assert kept == {"7001": new} and stats.duplicates == 1 and stats.rejected == 3
        assert sync_entity(entity("products"), client_for(sim, engine), engine, FULL).inserted == 1
    assert len(dead_letters(observer, "products")) == 3


# -- 3. the stock refresh race --------------------------------------------------------------------------


def test_stock_refresh_sees_a_write_committed_after_its_previous_run(erp):
    engine, observer = erp
    with simulator(records=20) as sim:
        client = client_for(sim, engine)
        spec = entity("products")
        sync_entity(spec, client, engine, FULL)
        sync_item_stock(client, engine)  # the daily listing
        with observer.begin() as conn:  # the initial writes are long past
            conn.execute(text("UPDATE zoho_products SET written_at = written_at - interval '1 hour'"))
        victim = first_id(sim, "products")
        record = zoho_record(sim, "products", victim)
        # A slow sync started (and took its time) before the next stock run, and commits only after it.
        row = to_row(spec, {**record, "name": "renamed by a slow sync"}, datetime.now(UTC))
        with engine.begin() as slow:
            upsert_rows(slow, entity_tables["products"], [row])
            during = sync_item_stock(client, engine)
        after = sync_item_stock(client, engine)
        warehouses = len(admin(sim, "GET", "warehouses")["ids"])
    assert during.complete and during.fetched == 0  # not committed yet: nothing to see
    assert after.scope == "touched items" and after.fetched == warehouses
    assert stored(observer, "products", victim, "name") == "renamed by a slow sync"


# -- 4/5. tombstones -----------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["delete", "rename", "insert"])
def test_data_changing_between_pages_never_tombstones_a_live_record(erp, action):
    engine, observer = erp
    with simulator(records=450) as sim:
        client = client_for(sim, engine)
        spec = entity("products")
        sync_entity(spec, client, engine, FULL)
        admin(sim, "POST", "faults", {"kind": "mutate", "action": action, "path_contains": "/items", "after_page": 1})
        stats = sync_entity(spec, client, engine, FULL)
        applied = admin(sim, "GET", "faults")["applied"]
        live = set(admin(sim, "GET", "products")["ids"])
        assert len(applied) == 1 and "error" not in applied[0]
        assert _tombstoned(observer, "products") == []  # a record shifted past a page boundary stays live
        assert stats.confirm_calls == stats.confirmed_live  # ... confirmed by a GET, and stored from it
        assert live <= stored_ids(observer, "products") or action == "insert"  # the next listing brings it
        again = sync_entity(spec, client, engine, FULL)
    assert {r.zoho_id for r in _tombstoned(observer, "products")} == (
        {applied[0]["zoho_id"]} if action == "delete" else set()
    )
    assert again.tombstoned == (action == "delete") and live == stored_ids(observer, "products", live_only=True)


def stored_ids(observer, name: str, live_only: bool = False) -> set[str]:
    table = entity_tables[name]
    query = select(table.c.zoho_id)
    if live_only:
        query = query.where(table.c.deleted_in_zoho_at.is_(None))
    with observer.connect() as conn:
        return set(conn.execute(query).scalars())


def _tombstoned(observer, name: str) -> list:
    table = entity_tables[name]
    with observer.connect() as conn:
        return list(conn.execute(select(table.c.zoho_id).where(table.c.deleted_in_zoho_at.is_not(None))))


def test_a_mass_deletion_is_refused_with_a_warning(erp):
    engine, observer = erp
    with simulator(records=60) as sim:
        client = client_for(sim, engine)
        spec = entity("customers")
        sync_entity(spec, client, engine, FULL)
        for zoho_id in sorted(admin(sim, "GET", "customers")["ids"])[:20]:
            admin(sim, "DELETE", f"customers/{zoho_id}")
        stats = sync_entity(spec, client, engine, FULL)
    assert stats.complete and stats.tombstoned == 0 and stats.tombstones_refused == 20
    assert "refused to tombstone 20" in stats.as_metadata()["notes"]
    assert _tombstoned(observer, "customers") == []


def test_an_incremental_run_tombstones_a_record_its_detail_get_finds_deleted(erp):
    engine, observer = erp
    with simulator(records=20) as sim:
        client = client_for(sim, engine)
        spec = entity("invoices")
        sync_entity(spec, client, engine, FULL)
        victim = first_id(sim, "invoices")
        admin(sim, "PATCH", f"invoices/{victim}", {"reference_number": "edited, then deleted"})
        fault = {"kind": "mutate", "action": "delete", "path_contains": "/invoices", "after_page": 1}
        admin(sim, "POST", "faults", fault | {"zoho_id": victim})
        stats = sync_entity(spec, client, engine, INCREMENTAL)
    assert stats.tombstoned == 1 and [r.zoho_id for r in _tombstoned(observer, "invoices")] == [victim]
    assert any("deletions" in note for note in stats.notes)


# -- 6/8/9. bad records --------------------------------------------------------------------------------


def test_poison_strings_and_numbers_are_stored_and_the_page_goes_on(erp):
    engine, observer = erp
    with simulator(records=30) as sim:
        client = client_for(sim, engine)
        ids = sorted(admin(sim, "GET", "products")["ids"])
        admin(sim, "PATCH", f"products/{ids[0]}", {"name": "x\ud800"})
        # 1e400 is valid JSON, read as infinity, which jsonb cannot hold.
        requests.patch(f"{sim.url}/admin/products/{ids[1]}", data='{"description": 1e400}', timeout=30)
        stats = sync_entity(entity("products"), client, engine, FULL)
    assert stats.complete and stats.rejected == 0 and count_rows(observer, "zoho_products") == 30
    assert stored(observer, "products", ids[0], "name") == "x\ufffd"
    assert stored(observer, "products", ids[1], "raw")["description"] == "Infinity"


def test_a_row_the_database_refuses_is_a_dead_letter_once_and_the_page_goes_on(erp):
    engine, observer = erp
    with observer.begin() as conn:  # an ERP's own rule, which TDS cannot know of
        conn.execute(text("ALTER TABLE zoho_products ADD CONSTRAINT erp_rule CHECK (name <> 'refused by the ERP')"))
    with simulator(records=30) as sim:
        client = client_for(sim, engine)
        victim = first_id(sim, "products")
        admin(sim, "PATCH", f"products/{victim}", {"name": "refused by the ERP"})
        first = sync_entity(entity("products"), client, engine, FULL)
        second = sync_entity(entity("products"), client, engine, FULL)
    assert first.complete and first.rejected == 1 and count_rows(observer, "zoho_products") == 29
    [letter] = dead_letters(observer, "products")
    assert letter.zoho_id == victim and "erp_rule" in letter.last_error
    assert second.complete and second.rejected == 0 and second.already_rejected == 1


def test_unparseable_values_are_counted_with_examples(erp, tmp_path):
    engine, _ = erp
    invoice = {
        "invoice_id": "800000000000001",
        "date": "2013-02-30",
        "exchange_rate": "abc",
        "total": 5,
        "last_modified_time": "2024-05-02T10:00:00+0300",
        "line_items": [],
    }
    (tmp_path / "invoices.json").write_text(json.dumps([invoice]))
    with simulator(fixtures_dir=str(tmp_path), records=0) as sim:
        stats = sync_entity(entity("invoices"), client_for(sim, engine), engine, FULL)
    metadata = stats.as_metadata()
    assert stats.inserted == 1 and metadata["unparseable_values"] == 2
    assert "2013-02-30" in metadata["unparseable_examples"] and "'abc'" in metadata["unparseable_examples"]
    assert "raw" in metadata["unparseable_examples"]


def test_a_bad_record_is_one_dead_letter_per_version_and_is_not_fetched_again(erp):
    engine, observer = erp
    with simulator(records=10) as sim:
        client = client_for(sim, engine)
        spec = entity("bills")
        victim = first_id(sim, "bills")
        admin(sim, "PATCH", f"bills/{victim}", {"total": "9" * 30})
        runs = [sync_entity(spec, client, engine, FULL) for _ in range(3)]
        admin(sim, "PATCH", f"bills/{victim}", {"total": "8" * 30})
        changed = sync_entity(spec, client, engine, FULL)
    assert [r.rejected for r in runs] == [1, 0, 0] and [r.detail_calls for r in runs[1:]] == [0, 0]
    assert changed.rejected == 1 and changed.detail_calls == 1
    assert len(dead_letters(observer, "bills")) == 2


# -- 7. transient failures -----------------------------------------------------------------------------


def test_five_503s_in_a_row_are_waited_out(erp):
    engine, observer = erp
    with simulator(records=30) as sim:
        client = client_for(sim, engine, backoff_base=0.05)
        admin(sim, "POST", "faults", {"kind": "503", "count": 5, "path_contains": "/invoices"})
        stats = sync_entity(entity("invoices"), client, engine, FULL)
    assert stats.complete and count_rows(observer, "zoho_invoices") == 30
    assert client.retries == 5


# -- 12/13. overlapping runs, full-only sets -----------------------------------------------------------


def test_overlapping_full_syncs_of_one_entity_do_the_work_once(erp):
    engine, observer = erp
    with simulator(records=200) as sim:
        spec = entity("invoices")
        results: list[SyncStats] = []
        clients = [client_for(sim, engine) for _ in range(3)]
        threads = [
            threading.Thread(target=lambda c=c: results.append(sync_entity(spec, c, engine, FULL))) for c in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        calls = admin(sim, "GET", "stats")["api_calls"]
    assert len(results) == 3
    done = [r for r in results if r.complete]
    busy = [r for r in results if r.skipped == "busy"]
    assert len(done) == 1 and len(busy) == 2 and all("another run" in r.skipped_reason for r in busy)
    assert calls <= 1.1 * done[0].api_calls
    assert count_rows(observer, "zoho_invoices") == 200


def test_incremental_runs_leave_small_full_only_sets_to_the_daily_full_sync(erp):
    engine, _ = erp
    with simulator(records=5) as sim:
        client = client_for(sim, engine)
        for name in ("users", "price_lists", "warehouses"):
            sync_entity(entity(name), client, engine, FULL)
            stats = sync_entity(entity(name), client, engine, INCREMENTAL)
            assert stats.skipped == "not_due" and stats.api_calls == 0, name


def test_a_full_listing_steps_aside_for_entities_that_waited_longer(erp):
    engine, observer = erp
    with simulator(records=450) as sim:
        client = client_for(sim, engine, job="full_sync")
        for name in ("invoices", "products"):  # full listings that now cost 3 calls each (450 / 200 a page)
            sync_entity(entity(name), client, engine, FULL)
            assert sync_entity(entity(name), client, engine, FULL).api_calls == 3
        with observer.begin() as conn:  # invoices were fully synced longest ago
            conn.execute(text("UPDATE tds_sync_state SET last_full_sync_at = last_full_sync_at - interval '1 day'"))
            conn.execute(
                text(
                    "UPDATE tds_sync_state SET last_full_sync_at = last_full_sync_at - interval '1 day' "
                    "WHERE entity = 'invoices'"
                )
            )
        # 5 calls left today for this job: enough for one listing, not for both.
        tight = client_for(sim, engine, job="full_sync", daily_limit=client.calls + 5, shares={"full_sync": 1.0})
        fresher = sync_entity(entity("products"), tight, engine, FULL)
        staler = sync_entity(entity("invoices"), tight, engine, FULL)
    assert fresher.skipped == "budget" and "invoices" in fresher.skipped_reason and fresher.api_calls == 0
    assert staler.complete


def test_a_row_written_whole_from_a_webhook_does_not_look_changed_to_the_next_pull(erp):
    engine, observer = erp
    with simulator(records=10) as sim:
        client = client_for(sim, engine)
        spec = entity("invoices")
        victim = first_id(sim, "invoices")
        record = admin(sim, "PATCH", f"invoices/{victim}", {"reference_number": "sent by a webhook"})["record"]
        row = to_row(spec, record, datetime.now(UTC))
        row.values["summary_hash"] = None  # what a webhook write stores: the whole record, no list summary
        with engine.begin() as conn:
            upsert_rows(conn, entity_tables["invoices"], [row])
        stats = sync_entity(spec, client, engine, FULL)
    assert stats.detail_calls == stats.fetched - 1 and stats.unchanged == 1
