"""Zoho record -> ERP rows, with the shapes of Zoho's documented GET answers (fixtures/zoho_examples)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tds_pipelines.entities import ENTITIES, entity
from tds_pipelines.erp.db import json_dumps
from tds_pipelines.erp.tables import child_tables_by_name, entity_tables, item_stock
from tds_pipelines.sync.transform import (
    RecordError,
    item_stock_row_from_listing,
    item_stock_rows,
    parse_bool,
    parse_date,
    parse_numeric,
    parse_text,
    parse_timestamp,
    record_version,
    summary_hash,
    to_row,
)

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "zoho_examples" / "get"
SYNCED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# example file -> (entity, expected id, expected version as UTC)
CASES = {
    "invoices": ("invoices", "982000000567114", datetime(2013, 11, 18, 10, 2, 51, tzinfo=UTC)),
    "bills": ("bills", "460000000098765", datetime(2013, 9, 11, 11, 48, 32, tzinfo=UTC)),
    "contacts": ("customers", "460000000026049", datetime(2013, 10, 7, 12, 54, 51, tzinfo=UTC)),
    # no last_modified_time: updated_time is the version
    "creditnotes": ("credit_notes", "90300000072369", datetime(2016, 6, 5, 9, 30, 8, tzinfo=UTC)),
    "customerpayments": ("customer_payments", "9030000079467", None),
    "inventoryadjustments": ("stock_adjustments", "4815000000044100", None),
    "items": ("products", "45667789900", None),
    "items_inventory": ("products", "4815000000044208", None),
}


def row_columns(table) -> set[str]:
    """The columns a row carries: all but written_at, which the database's clock sets at the write."""
    return {c.name for c in table.columns} - {"written_at"}


def example(name: str) -> dict:
    body = json.loads((EXAMPLES / f"{name}.json").read_text())
    record = next(v for k, v in body.items() if k not in ("code", "message"))
    return record[0] if isinstance(record, list) else record  # the sales order sample wraps it in a list


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2013-11-18T02:02:51-0800", datetime(2013, 11, 18, 10, 2, 51, tzinfo=UTC)),
        ("2013-11-18T02:02:51-08:00", datetime(2013, 11, 18, 10, 2, 51, tzinfo=UTC)),
        ("2013-09-11T17:18:32+0530", datetime(2013, 9, 11, 11, 48, 32, tzinfo=UTC)),
        ("2013-11-18T10:02:51Z", datetime(2013, 11, 18, 10, 2, 51, tzinfo=UTC)),
        ("2013-11-18T10:02:51", datetime(2013, 11, 18, 10, 2, 51, tzinfo=UTC)),
        ("2013-11-18 10:02:51.250+0000", datetime(2013, 11, 18, 10, 2, 51, 250000, tzinfo=UTC)),
        ("2013-11-18", datetime(2013, 11, 18, tzinfo=UTC)),
        ("", None),
        (" ", None),
        (None, None),
    ],
)
def test_parse_timestamp_gives_aware_utc(value, expected):
    parsed = parse_timestamp(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is UTC


def test_parse_timestamp_refuses_garbage():
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("", None),
        (" ", None),
        (None, None),
        ("5%", None),
        ("N/A", None),
        ("NaN", None),
        (True, None),
        (10000.0, Decimal("10000.0")),
        (40.6, Decimal("40.6")),
        (120, Decimal(120)),
        ("1234567.891", Decimal("1234567.891")),
        ("1,234.50", Decimal("1234.50")),
        (Decimal("0.1"), Decimal("0.1")),
    ],
)
def test_parse_numeric(value, expected):
    assert parse_numeric(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), ("false", False), ("TRUE", True), (1, True), (0, False), ("", None), ("maybe", None)],
)
def test_parse_bool(value, expected):
    assert parse_bool(value) is expected


def test_parse_date_and_text():
    assert parse_date("2013-11-17") == date(2013, 11, 17)
    assert parse_date("2013-11-17T23:00:00-0800") == date(2013, 11, 17)
    assert parse_date(" ") is None
    with pytest.raises(ValueError):
        parse_date("17/11/2013")
    assert parse_text(" ") is None
    assert parse_text("  padded ") == "  padded "  # kept as sent
    assert parse_text(982000000567114) == "982000000567114"
    assert parse_text("a\x00b") == "ab"


@pytest.mark.parametrize("name", sorted(CASES))
def test_documented_shapes_transform(name):
    entity_name, zoho_id, version = CASES[name]
    spec = entity(entity_name)
    record = example(name)
    row = to_row(spec, record, SYNCED_AT)

    assert row.zoho_id == zoho_id
    assert row.version == version
    assert set(row.values) == row_columns(entity_tables[entity_name])
    assert row.values["raw"] == record
    assert row.values["synced_at"] == SYNCED_AT
    assert row.values["deleted_in_zoho_at"] is None
    for child in spec.children:
        assert child.table in row.children, "every sample carries its children"
        for position, child_row in enumerate(row.children[child.table], start=1):
            assert set(child_row) == {c.name for c in child_tables_by_name[child.table].columns}
            assert child_row["parent_zoho_id"] == row.zoho_id
            assert child_row["position"] == position
            assert child_row["zoho_id"] is None or isinstance(child_row["zoho_id"], str)


def test_sales_order_sample_has_no_id_and_is_refused_until_it_has_one():
    record = example("salesorders")  # Zoho's sample is the create-request shape: no salesorder_id
    with pytest.raises(RecordError, match="salesorder_id"):
        to_row(entity("sales_orders"), record, SYNCED_AT)
    row = to_row(entity("sales_orders"), {**record, "salesorder_id": "460000000039129"}, SYNCED_AT)
    assert row.children["zoho_sales_order_line_items"]
    assert row.values["salesperson_id"] == str(record["salesperson_id"])


def test_invoice_typed_columns():
    row = to_row(entity("invoices"), example("invoices"), SYNCED_AT)
    values = row.values
    assert values["customer_id"] == "982000000567001"  # a JSON number in the sample: stored as text
    assert values["date"] == date(2013, 11, 17)
    assert values["total"] == Decimal("10000.0")
    assert values["balance"] == Decimal("40.6")
    assert values["created_time"] == datetime(2013, 11, 18, 10, 17, 40, tzinfo=UTC)
    line = row.children["zoho_invoice_line_items"][0]
    assert line["zoho_id"] == "982000000567021"
    assert line["rate"] == Decimal(120)
    assert line["tax_percentage"] == Decimal("12.5")
    assert row.warnings == []


def test_stock_adjustment_quantity_comes_from_quantity_adjusted():
    row = to_row(entity("stock_adjustments"), example("inventoryadjustments"), SYNCED_AT)
    assert row.children["zoho_stock_adjustment_line_items"][0]["quantity"] == Decimal(10)


def test_blank_strings_and_numbers_become_null_and_raw_keeps_them():
    record = {"invoice_id": "1", "total": "", "balance": " ", "customer_name": " ", "status": "draft"}
    row = to_row(entity("invoices"), record, SYNCED_AT)
    assert row.values["total"] is None
    assert row.values["balance"] is None
    assert row.values["customer_name"] is None
    assert row.values["raw"]["customer_name"] == " "
    assert row.warnings == []


def test_unparseable_typed_value_is_null_with_a_warning():
    record = {
        "invoice_id": "1",
        "total": "5%",
        "date": "someday",
        "last_modified_time": "2024-01-01T00:00:00+0000",
    }
    row = to_row(entity("invoices"), record, SYNCED_AT)
    assert row.values["total"] is None and row.values["date"] is None
    assert sorted(w.split(":")[0] for w in row.warnings) == ["date", "total"]


def test_missing_id_names_entity_and_field():
    with pytest.raises(RecordError) as caught:
        to_row(entity("invoices"), {"total": 1}, SYNCED_AT)
    assert caught.value.entity == "invoices" and caught.value.field == "invoice_id"
    assert "invoices" in str(caught.value) and "invoice_id" in str(caught.value)


def test_unparseable_version_is_a_record_error():
    with pytest.raises(RecordError) as caught:
        to_row(entity("invoices"), {"invoice_id": "7", "last_modified_time": "last week"}, SYNCED_AT)
    assert (caught.value.zoho_id, caught.value.field) == ("7", "last_modified_time")


def test_number_too_large_for_the_column_is_a_record_error():
    with pytest.raises(RecordError) as caught:
        to_row(entity("invoices"), {"invoice_id": "7", "total": "1e20"}, SYNCED_AT)
    assert caught.value.field == "total"


def test_child_entry_that_is_not_an_object_is_a_record_error():
    with pytest.raises(RecordError) as caught:
        to_row(entity("invoices"), {"invoice_id": "7", "line_items": ["oops"]}, SYNCED_AT)
    assert caught.value.field == "line_items[1]"


def test_absent_children_are_left_alone_and_empty_children_clear():
    spec = entity("invoices")
    assert to_row(spec, {"invoice_id": "1"}, SYNCED_AT).children == {}
    assert to_row(spec, {"invoice_id": "1", "line_items": []}, SYNCED_AT).children == {"zoho_invoice_line_items": []}


def test_version_prefers_last_modified_then_updated_then_created():
    spec = entity("credit_notes")
    assert record_version(spec, {"created_time": "2020-01-01T00:00:00+0000"}) == datetime(2020, 1, 1, tzinfo=UTC)
    both = {"created_time": "2020-01-01T00:00:00+0000", "updated_time": "2021-01-01T00:00:00+0000"}
    assert record_version(spec, both) == datetime(2021, 1, 1, tzinfo=UTC)
    all_three = {**both, "last_modified_time": "", "updated_time": " "}
    assert record_version(spec, all_three) == datetime(2020, 1, 1, tzinfo=UTC)  # blank ones are absent
    assert record_version(spec, {}) is None


def test_summary_hash_is_stable_and_order_independent():
    a = {"invoice_id": "1", "total": 10, "name": "عربي"}
    b = {"name": "عربي", "total": 10, "invoice_id": "1"}
    assert summary_hash(a) == summary_hash(b)
    assert summary_hash(a) != summary_hash({**a, "total": 11})
    assert len(summary_hash(a)) == 64


def test_summary_hash_of_the_list_entry_is_stored_when_given():
    summary = {"invoice_id": "1", "total": 10}
    row = to_row(entity("invoices"), {**summary, "line_items": []}, SYNCED_AT, summary=summary)
    assert row.values["summary_hash"] == summary_hash(summary)


def test_nul_is_stripped_from_text_and_raw():
    record = {"invoice_id": "1", "customer_name": "a\x00b", "custom_fields": [{"value": "x\x00"}]}
    row = to_row(entity("invoices"), record, SYNCED_AT)
    assert row.values["customer_name"] == "ab"
    assert row.values["raw"]["custom_fields"][0]["value"] == "x"


def test_naive_synced_at_is_taken_as_utc():
    row = to_row(entity("users"), {"user_id": "1"}, datetime(2026, 1, 1, 12, 0))
    assert row.values["synced_at"] == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_item_stock_rows_from_warehouses():
    item = {
        "item_id": 4815000000044208,
        "last_modified_time": "2024-01-01T00:00:00+0300",
        "warehouses": [
            {
                "warehouse_id": "460000000038080",
                "warehouse_name": "المستودع الرئيسي",
                "warehouse_stock_on_hand": 12,
                "warehouse_available_stock": "",
                "warehouse_actual_available_stock": "10.5",
                "warehouse_committed_stock": 2,
                "warehouse_available_for_sale_stock": 10,
            }
        ],
    }
    (row,) = item_stock_rows(item, SYNCED_AT)
    assert row.zoho_id == "4815000000044208:460000000038080"
    assert set(row.values) == row_columns(item_stock)
    assert row.values["item_id"] == "4815000000044208"
    assert row.values["warehouse_name"] == "المستودع الرئيسي"
    assert row.values["stock_on_hand"] == Decimal(12)
    assert row.values["available_stock"] is None
    assert row.values["actual_available_stock"] == Decimal("10.5")
    assert row.version is None  # stock rows: the latest observation wins


def test_item_stock_rows_from_locations_of_the_documented_item():
    rows = item_stock_rows(example("items"), SYNCED_AT)
    assert [r.zoho_id for r in rows] == ["45667789900:460000000038080"]
    assert rows[0].values["stock_on_hand"] is None  # "" in the sample
    assert item_stock_rows({"item_id": "1"}, SYNCED_AT) == []


def test_item_stock_row_from_the_warehouse_listing():
    row = item_stock_row_from_listing({"item_id": "9", "stock_on_hand": 3}, "77", SYNCED_AT, "Erbil")
    assert row.zoho_id == "9:77"
    assert (row.values["stock_on_hand"], row.values["warehouse_name"]) == (Decimal(3), "Erbil")


def test_every_registry_entity_transforms_a_minimal_record():
    for spec in ENTITIES:
        row = to_row(spec, {spec.id_field: "42"}, SYNCED_AT)
        assert set(row.values) == row_columns(entity_tables[spec.name])


# -- fuzzing: no value Zoho could send makes to_row fail other than with a RecordError ----------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S%z"))
    | st.sampled_from(
        ["", " ", "x\ud800", "\x00", "9999-12-31T23:59:59-0800", "0001-01-01T00:00:00+1400", "2013-02-30", "1e400"]
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def _fields(spec) -> list[str]:
    return [spec.id_field, *spec.version_fields, *(c.field for c in spec.columns)]


@pytest.mark.parametrize("name", ["invoices", "products", "customer_payments"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_json_in_any_field_gives_a_row_or_a_record_error(name, data):
    spec = entity(name)
    record = {field: data.draw(JSON_VALUES, label=field) for field in _fields(spec)}
    record[spec.id_field] = data.draw(st.just("1001") | JSON_VALUES, label="id")
    for child in spec.children:
        entry = {
            f: data.draw(JSON_VALUES, label=f"{child.field}.{f}")
            for f in (child.id_field, *(c.field for c in child.columns))
        }
        record[child.field] = data.draw(st.sampled_from([[entry], entry, None, "x"]), label=child.field)
    summary_hash(record)  # never raises
    try:
        row = to_row(spec, record, SYNCED_AT, summary=record)
    except RecordError:
        return
    json_dumps(row.values["raw"]).encode("utf-8")  # what PostgreSQL receives is valid UTF-8
    for value in row.values.values():
        if isinstance(value, str):
            value.encode("utf-8")
