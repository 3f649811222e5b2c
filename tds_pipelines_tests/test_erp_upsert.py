"""Version-guarded bulk upsert, tombstones and the diff lookup, on real databases.

Every test runs on PostgreSQL (COPY path) and on SQLite (the demo's path). Writes are committed by the
caller's transaction and read back through a separate engine, as the ERP would see them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import IntegrityError

from tds_pipelines.entities import entity
from tds_pipelines.erp.db import QueuedJson, make_engine, normalize_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.queue import enqueue_delivery
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, item_stock, metadata
from tds_pipelines.erp.upsert import load_versions, missing_ids, tombstone_ids, upsert_rows
from tds_pipelines.sync.transform import item_stock_rows, to_row
from tds_pipelines.zoho.webhooks import parse_delivery

INVOICES = entity("invoices")
invoices = entity_tables["invoices"]
lines = child_tables_by_name["zoho_invoice_line_items"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Store:
    kind: str
    engine: Engine  # what TDS writes with
    reader: Engine  # a separate engine: sees only what was committed


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def store(request, tmp_path_factory):
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server_url")
        schema = f"upsert_{uuid.uuid4().hex[:8]}"
        upgrade(url, schema)
        reader = create_engine(normalize_url(url), connect_args={"options": f"-csearch_path={schema}"})
        engine = make_engine(url, schema)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('erp') / 'erp.sqlite'}"
        upgrade(url)
        reader, engine = create_engine(url), make_engine(url)
    yield Store(request.param, engine, reader)
    reader.dispose()


@pytest.fixture(autouse=True)
def empty_tables(store):
    with store.engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name.startswith("zoho_"):
                conn.execute(table.delete())


def invoice(zoho_id: str, modified: str | None = "2026-03-01T10:00:00+0000", **fields) -> dict:
    record = {
        "invoice_id": zoho_id,
        "invoice_number": f"INV-{zoho_id}",
        "customer_id": 982000000567001,
        "customer_name": "Bowman & Co",
        "status": "sent",
        "date": "2026-02-27",
        "total": 100.5,
        "currency_code": "IQD",
        "line_items": [
            {
                "line_item_id": f"{zoho_id}01",
                "item_id": "5001",
                "name": "Hard Drive",
                "quantity": 1,
                "rate": 100.5,
            }
        ],
    }
    if modified is not None:
        record["last_modified_time"] = modified
    record.update(fields)
    return record


def upsert(store: Store, records: list[dict], synced_at: datetime = T0, spec=INVOICES):
    rows = [to_row(spec, r, synced_at) for r in records]
    with store.engine.begin() as conn:
        return upsert_rows(conn, entity_tables[spec.name], rows)


def stored(store: Store, table=invoices) -> dict[str, dict]:
    with store.reader.connect() as conn:
        return {r["zoho_id"]: dict(r) for r in conn.execute(select(table)).mappings()}


def stored_lines(store: Store, parent: str) -> list[dict]:
    with store.reader.connect() as conn:
        query = select(lines).where(lines.c.parent_zoho_id == parent).order_by(lines.c.position)
        return [dict(r) for r in conn.execute(query).mappings()]


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_counts_insert_update_and_stale(store):
    first = upsert(store, [invoice("1"), invoice("2"), invoice("3")])
    assert (first.inserted, first.updated, first.stale) == (3, 0, 0)
    assert sorted(first.written_ids) == ["1", "2", "3"]

    newer, older = "2026-03-01T11:00:00+0000", "2026-03-01T09:00:00+0000"
    second = upsert(
        store,
        [
            invoice("1", newer, status="paid"),
            invoice("2", newer, status="paid"),
            invoice("3", older),
            invoice("4"),
        ],
    )
    assert (second.inserted, second.updated, second.stale) == (1, 2, 1)
    assert sorted(second.written_ids) == ["1", "2", "4"]
    rows = stored(store)
    assert {k: v["status"] for k, v in rows.items()} == {"1": "paid", "2": "paid", "3": "sent", "4": "sent"}


def test_older_version_never_overwrites_newer(store):
    upsert(store, [invoice("1", "2026-03-01T11:00:00+0000", total=200)])
    result = upsert(store, [invoice("1", "2026-03-01T10:59:59+0000", total=1)], synced_at=T0 + timedelta(hours=1))
    assert result.stale == 1 and result.written_ids == []
    row = stored(store)["1"]
    assert row["total"] == Decimal(200)
    assert utc(row["zoho_last_modified_time"]) == datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_equal_version_overwrites(store):
    upsert(store, [invoice("1", total=200)])
    result = upsert(store, [invoice("1", total=300)])
    assert result.updated == 1
    assert stored(store)["1"]["total"] == Decimal(300)


def test_versions_compare_as_utc_instants_across_offsets(store):
    # 10:00+0300 is 07:00Z. 08:30+0100 (07:30Z) is newer although its wall clock reads earlier.
    upsert(store, [invoice("1", "2026-03-01T10:00:00+0300", status="first")])
    assert upsert(store, [invoice("1", "2026-03-01T08:30:00+0100", status="newer")]).updated == 1
    # 01:59-0500 is 06:59Z: older than what is stored, however its wall clock reads.
    assert upsert(store, [invoice("1", "2026-03-01T01:59:00-0500", status="older")]).stale == 1
    row = stored(store)["1"]
    assert row["status"] == "newer"
    assert utc(row["zoho_last_modified_time"]) == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    if store.kind == "postgresql":
        assert row["zoho_last_modified_time"].utcoffset() is not None  # timestamptz


def test_unversioned_records_later_arrival_wins(store):
    payments = entity("customer_payments")
    payment = {"payment_id": "P1", "amount": "10", "date": "2026-02-01"}
    upsert(store, [payment], synced_at=T0, spec=payments)
    assert upsert(store, [{**payment, "amount": "20"}], synced_at=T0 + timedelta(minutes=5), spec=payments).updated == 1
    late = upsert(store, [{**payment, "amount": "5"}], synced_at=T0 + timedelta(minutes=1), spec=payments)
    assert late.stale == 1
    row = stored(store, entity_tables["customer_payments"])["P1"]
    assert row["amount"] == Decimal(20)
    assert utc(row["synced_at"]) == T0 + timedelta(minutes=5)


def test_versioned_row_against_an_unversioned_arrival_uses_arrival_time(store):
    upsert(store, [invoice("1", "2026-03-01T10:00:00+0000", status="versioned")], synced_at=T0)
    earlier = upsert(store, [invoice("1", None, status="old webhook")], synced_at=T0 - timedelta(minutes=1))
    assert earlier.stale == 1
    later = upsert(store, [invoice("1", None, status="new webhook")], synced_at=T0 + timedelta(minutes=1))
    assert later.updated == 1
    assert stored(store)["1"]["status"] == "new webhook"


def test_children_are_replaced_with_their_parent_and_untouched_when_stale(store):
    two_lines = [
        {"line_item_id": "L1", "item_id": "5001", "quantity": 1, "rate": 10},
        {"line_item_id": "L2", "item_id": "5002", "quantity": 2, "rate": 20},
    ]
    result = upsert(store, [invoice("1", line_items=two_lines)])
    assert result.children_written == 2
    assert [(r["position"], r["zoho_id"]) for r in stored_lines(store, "1")] == [(1, "L1"), (2, "L2")]

    one_line = [{"line_item_id": "L3", "item_id": "5003", "quantity": 3, "rate": 30}]
    upsert(store, [invoice("1", "2026-03-01T11:00:00+0000", line_items=one_line)])
    assert [(r["position"], r["zoho_id"], r["quantity"]) for r in stored_lines(store, "1")] == [(1, "L3", Decimal(3))]

    stale = upsert(store, [invoice("1", "2026-03-01T09:00:00+0000", line_items=two_lines)])
    assert stale.stale == 1 and stale.children_written == 0
    assert [r["zoho_id"] for r in stored_lines(store, "1")] == ["L3"]

    # A record without the field (an abridged summary) leaves them; an empty list clears them.
    without = invoice("1", "2026-03-01T12:00:00+0000")
    del without["line_items"]
    upsert(store, [without])
    assert [r["zoho_id"] for r in stored_lines(store, "1")] == ["L3"]
    upsert(store, [invoice("1", "2026-03-01T12:00:00+0000", line_items=[])])
    assert stored_lines(store, "1") == []


def test_children_of_other_parents_are_not_touched(store):
    upsert(store, [invoice("1"), invoice("2")])
    upsert(store, [invoice("1", "2026-03-02T00:00:00+0000", line_items=[])])
    assert stored_lines(store, "1") == []
    assert [r["zoho_id"] for r in stored_lines(store, "2")] == ["201"]


def tombstone_missing(conn, table, listed, window=None, now=None) -> int:
    """What a finished full listing does once Zoho confirmed every candidate gone."""
    candidates, _live = missing_ids(conn, table, listed, window)
    return tombstone_ids(conn, table, candidates, now)


def test_missing_ids_are_candidates_with_the_live_count(store):
    upsert(store, [invoice("1"), invoice("2"), invoice("3", date="2026-05-05")])
    with store.engine.begin() as conn:
        assert missing_ids(conn, invoices, ["2"]) == (["1", "3"], 3)
        assert missing_ids(conn, invoices, [], window=("date", date(2026, 5, 1), date(2026, 5, 31))) == (["3"], 1)


def test_tombstone_and_untombstone(store):
    upsert(store, [invoice("1"), invoice("2"), invoice("3")])
    now = T0 + timedelta(hours=2)
    with store.engine.begin() as conn:
        assert tombstone_missing(conn, invoices, ["1"], now=now) == 2
    with store.engine.begin() as conn:
        assert tombstone_missing(conn, invoices, ["1"], now=now + timedelta(hours=1)) == 0  # already marked
    rows = stored(store)
    assert rows["1"]["deleted_in_zoho_at"] is None
    assert utc(rows["2"]["deleted_in_zoho_at"]) == now and utc(rows["3"]["deleted_in_zoho_at"]) == now

    # A stale arrival does not resurrect (it predates the deletion); an as-new one does.
    assert upsert(store, [invoice("2", "2026-03-01T09:00:00+0000")]).stale == 1
    assert stored(store)["2"]["deleted_in_zoho_at"] is not None
    assert upsert(store, [invoice("2")]).updated == 1
    with store.engine.connect() as conn:
        known = load_versions(conn, invoices, ["2", "3"])
    assert stored(store)["2"]["deleted_in_zoho_at"] is None
    assert (known["2"].tombstoned, known["3"].tombstoned) == (False, True)


def test_windowed_tombstone_touches_only_its_document_dates(store):
    upsert(
        store,
        [
            invoice("jan", date="2026-01-31"),
            invoice("feb-listed", date="2026-02-01"),
            invoice("feb-gone", date="2026-02-28"),
            invoice("mar", date="2026-03-01"),
            invoice("undated", date=""),
        ],
    )
    with store.engine.begin() as conn:
        window = ("date", date(2026, 2, 1), date(2026, 2, 28))
        assert tombstone_missing(conn, invoices, {"feb-listed"}, window=window) == 1
    gone = {k for k, v in stored(store).items() if v["deleted_in_zoho_at"] is not None}
    assert gone == {"feb-gone"}


def test_tombstone_with_many_listed_ids(store):
    if store.kind != "postgresql":
        pytest.skip("the 50k-id path is PostgreSQL's (COPY into a temp table)")
    upsert(store, [invoice(str(n)) for n in range(1000)])
    listed = [str(n) for n in range(0, 50_000) if n != 7]
    with store.engine.begin() as conn:
        assert tombstone_missing(conn, invoices, listed) == 1
    assert [k for k, v in stored(store).items() if v["deleted_in_zoho_at"]] == ["7"]


def test_awkward_text_survives(store):
    # \. alone on a line is COPY's end-of-data marker unless quoted; \N is text format's NULL.
    nasty = "tab\there, newline\nand\r\ncr, \"double\" 'single' back\\slash \\N\n\\.\n, comma; عربي: مرحبا"
    record = invoice("1", customer_name=nasty + "\x00", notes={"nested": [nasty, None, 1.5]})
    record["line_items"][0]["name"] = nasty
    assert upsert(store, [record]).inserted == 1
    row = stored(store)["1"]
    assert row["customer_name"] == nasty  # NUL dropped: PostgreSQL text cannot hold it
    assert row["raw"]["customer_name"] == nasty
    assert row["raw"]["notes"] == {"nested": [nasty, None, 1.5]}
    assert stored_lines(store, "1")[0]["name"] == nasty


def test_empty_string_text_and_null_are_distinct_in_raw(store):
    upsert(store, [invoice("1", customer_name="", reference_number="")])
    row = stored(store)["1"]
    assert row["customer_name"] is None
    assert row["raw"]["reference_number"] == ""


def test_duplicate_ids_in_one_batch_keep_the_newest(store):
    records = [
        invoice("1", "2026-03-01T10:00:00+0000", status="middle"),
        invoice("1", "2026-03-01T12:00:00+0000", status="newest"),
        invoice("1", "2026-03-01T08:00:00+0000", status="oldest"),
        invoice("2"),
    ]
    result = upsert(store, records)
    assert (result.inserted, result.duplicates) == (2, 2)
    assert stored(store)["1"]["status"] == "newest"


def test_numeric_blank_is_null_and_money_is_exact(store):
    upsert(store, [invoice("1", total="", balance=" "), invoice("2", total="1234567.891", balance=1234567.891)])
    rows = stored(store)
    assert rows["1"]["total"] is None and rows["1"]["balance"] is None
    assert rows["2"]["total"] == Decimal("1234567.891")
    assert rows["2"]["balance"] == Decimal("1234567.891")
    if store.kind == "postgresql":
        assert str(rows["2"]["total"]) == "1234567.891000"  # NUMERIC(20, 6), no float on the way


def test_nothing_is_visible_until_the_callers_transaction_commits(store):
    rows = [to_row(INVOICES, invoice("1"), T0)]
    with store.engine.connect() as conn:
        transaction = conn.begin()
        upsert_rows(conn, invoices, rows)
        transaction.rollback()
    assert stored(store) == {}
    with store.engine.begin() as conn:
        upsert_rows(conn, invoices, rows)
    assert list(stored(store)) == ["1"]


def test_load_versions(store):
    upsert(store, [invoice(str(n), "2026-03-01T10:00:00-0800") for n in range(250)])
    ids = [str(n) for n in range(200)] + ["missing"]
    with store.engine.connect() as conn:
        known = load_versions(conn, "invoices", ids)
    assert len(known) == 200 and "missing" not in known
    version, digest, tombstoned = known["5"]
    assert version == datetime(2026, 3, 1, 18, tzinfo=UTC) and version.tzinfo is not None
    assert len(digest) == 64 and tombstoned is False


def test_item_stock_rows_upsert_latest_observation_wins(store):
    item = {
        "item_id": "9",
        "warehouses": [{"warehouse_id": "W1", "warehouse_name": "بغداد", "warehouse_stock_on_hand": 5}],
    }
    with store.engine.begin() as conn:
        assert upsert_rows(conn, item_stock, item_stock_rows(item, T0)).inserted == 1
    item["warehouses"][0]["warehouse_stock_on_hand"] = 3
    with store.engine.begin() as conn:
        assert upsert_rows(conn, "item_stock", item_stock_rows(item, T0 + timedelta(minutes=15))).updated == 1
        assert upsert_rows(conn, "item_stock", item_stock_rows(item, T0)).stale == 1
    row = stored(store, item_stock)["9:W1"]
    assert (row["stock_on_hand"], row["warehouse_name"]) == (Decimal(3), "بغداد")


def test_empty_batch_is_a_no_op(store):
    with store.engine.begin() as conn:
        result = upsert_rows(conn, invoices, [])
    assert (result.inserted, result.updated, result.stale, result.written_ids) == (0, 0, 0, [])


def test_writes_in_one_transaction_around_a_rolled_back_one(store):
    # PostgreSQL stages rows in a temporary table reused across writes: it must start empty for each write,
    # and a rolled-back savepoint that created it (the session's temporary tables discarded first) must not
    # leave the next write without it.
    with store.engine.begin() as conn:
        upsert_rows(conn, invoices, [to_row(INVOICES, invoice("1"), T0)])
        if store.kind == "postgresql":
            conn.exec_driver_sql("DISCARD TEMP")
        with pytest.raises(RuntimeError), conn.begin_nested():
            upsert_rows(conn, invoices, [to_row(INVOICES, invoice("2"), T0)])
            raise RuntimeError("the caller gave up on this write")
        assert upsert_rows(conn, invoices, [to_row(INVOICES, invoice("3"), T0)]).written_ids == ["3"]
    assert sorted(stored(store)) == ["1", "3"]
    assert [line["zoho_id"] for line in stored_lines(store, "3")] == ["301"]
    assert stored_lines(store, "2") == []


def test_a_raw_the_queue_holds_is_taken_from_the_queue(store):
    record = invoice("1", customer_name="قادم من الطابور")
    with store.engine.begin() as conn:
        queue_id, _ = enqueue_delivery(conn, parse_delivery({"invoice": record}))
    text = json.dumps(record, ensure_ascii=False)
    row = to_row(INVOICES, record, T0, hashed=False)
    row.values["raw"] = QueuedJson(text, queue_id)
    lost = to_row(INVOICES, invoice("2"), T0, hashed=False)
    lost.values["raw"] = QueuedJson(text.replace('"1"', '"2"'), queue_id + 1000)
    with store.engine.begin() as conn:
        assert upsert_rows(conn, invoices, [row]).inserted == 1
    assert stored(store)["1"]["raw"] == record
    assert stored_lines(store, "1")[0]["raw"] == record["line_items"][0]
    if store.kind == "postgresql":  # the stored payload, not the text: a queue row gone refuses the write
        with pytest.raises(IntegrityError, match="raw"), store.engine.begin() as conn:
            upsert_rows(conn, invoices, [lost])
        assert "2" not in stored(store)
