"""Zoho's counts against the ERP's live rows: the simulator over real HTTP, PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tds_pipelines.entities import ENTITIES, entity
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.sync.counts import compare_counts, tolerance_for
from tds_pipelines.sync.engine import Scope, sync_entity
from tds_pipelines_tests.sync_fixtures import admin, client_for, count_rows, simulator, zoho_record

FULL = Scope("full")


@pytest.fixture
def sim():
    with simulator(records=12) as running:
        yield running


def live_ids(observer, name: str) -> list[str]:
    table = entity_tables[name]
    with observer.connect() as conn:
        query = select(table.c.zoho_id).where(table.c.deleted_in_zoho_at.is_(None)).order_by(table.c.zoho_id)
        return list(conn.execute(query).scalars())


def test_every_entity_matches_after_a_full_sync_at_one_call_where_zoho_counts(sim, erp):
    engine, _ = erp
    client = client_for(sim, engine)
    for spec in ENTITIES:
        assert sync_entity(spec, client, engine, FULL).complete, spec.name
    calls_before = client.calls
    comparisons = [compare_counts(client, engine, spec, tolerance=0) for spec in ENTITIES]
    for spec, comparison in zip(ENTITIES, comparisons, strict=True):
        assert comparison.passed and comparison.difference == 0, comparison
        assert comparison.zoho_count > 0 and (comparison.missing_in_erp, comparison.missing_in_zoho) == ([], [])
        assert comparison.api_calls == 1, spec.name  # a count, or a one-page listing of a list Zoho cannot count
    assert client.calls - calls_before == len(ENTITIES)
    assert comparisons[0].as_metadata()["missing_in_erp"] == ""


def test_records_created_and_deleted_in_zoho_are_named_until_a_tolerance_covers_them(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("invoices")
    sync_entity(spec, client, engine, FULL)
    first, deleted = live_ids(observer, "invoices")[:2]
    template = zoho_record(sim, "invoices", first)
    created = ["990000000000001", "990000000000002"]
    admin(sim, "PUT", f"invoices/{created[0]}", template)
    admin(sim, "DELETE", f"invoices/{deleted}")
    swapped = compare_counts(client, engine, spec, tolerance=0)
    assert swapped.passed and swapped.api_calls == 1  # a creation and a deletion cancel out in counts
    admin(sim, "PUT", f"invoices/{created[1]}", template)
    failed = compare_counts(client, engine, spec, tolerance=0)
    assert not failed.passed and failed.difference == 1
    assert (failed.missing_in_erp, failed.missing_in_zoho) == (created, [deleted])
    assert failed.api_calls == 2  # the count, then one page of ids
    assert failed.as_metadata()["missing_in_erp"] == ", ".join(created)
    assert compare_counts(client, engine, spec, tolerance=0, sample=1).missing_in_erp == created[:1]
    tolerated = compare_counts(client, engine, spec, tolerance=2)
    assert tolerated.passed and tolerated.api_calls == 1 and tolerated.missing_in_erp == []


def test_tombstoned_rows_are_not_counted_as_live(sim, erp):
    engine, observer = erp
    client = client_for(sim, engine)
    spec = entity("invoices")
    sync_entity(spec, client, engine, FULL)
    gone, hidden = live_ids(observer, "invoices")[:2]
    admin(sim, "DELETE", f"invoices/{gone}")
    assert sync_entity(spec, client, engine, FULL).tombstoned == 1
    after_sync = compare_counts(client, engine, spec, tolerance=0)
    assert after_sync.passed and after_sync.erp_count == count_rows(observer, "zoho_invoices") - 1
    table = entity_tables["invoices"]
    with engine.begin() as conn:  # a row wrongly tombstoned while Zoho still has it
        conn.execute(table.update().where(table.c.zoho_id == hidden).values(deleted_in_zoho_at=table.c.synced_at))
    wrong = compare_counts(client, engine, spec, tolerance=0)
    assert not wrong.passed and (wrong.missing_in_erp, wrong.missing_in_zoho) == ([hidden], [])


def test_tolerance_is_a_share_of_the_live_rows_with_a_floor(monkeypatch):
    assert tolerance_for(1000, 0.01, 3) == 10 and tolerance_for(100, 0.01, 3) == 3
    monkeypatch.setenv("TDS_COUNT_TOLERANCE_SHARE", "0.02")
    monkeypatch.setenv("TDS_COUNT_TOLERANCE_ROWS", "5")
    assert tolerance_for(1000) == 20 and tolerance_for(10) == 5
    monkeypatch.setenv("TDS_COUNT_TOLERANCE_ROWS", "many")
    with pytest.raises(ValueError, match="TDS_COUNT_TOLERANCE_ROWS"):
        tolerance_for(10)
