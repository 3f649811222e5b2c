"""The Zoho simulator behaves like Zoho (zoho-api.md), over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from tds_pipelines.simulator.cli import add_arguments, config_from_args
from tds_pipelines.simulator.timestamps import format_ts, parse_ts
from tds_pipelines_tests.capture import capture_server
from tds_pipelines_tests.simulator_fixtures import authorized_session, running_simulator

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")
TOKEN_FORM = {
    "grant_type": "refresh_token",
    "client_id": "sim-client",
    "client_secret": "sim-secret",
    "refresh_token": "sim-refresh",
}


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll `predicate` until truthy (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="module")
def sim():
    """A shared simulator without rate limits, for the functional tests."""
    with running_simulator(
        records=60,
        entity_records={"invoices": 450, "products": 420, "credit_notes": 120},
        rate_limit_per_minute=0,
        daily_limit=0,
        concurrency_limit=0,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(sim):
    return authorized_session(sim)


def list_all(api, url: str, key: str, **params) -> list[dict]:
    rows, page = [], 1
    while True:
        answer = api.get(url, params={**params, "page": page, "per_page": 200}, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows += body[key]
        if not body["page_context"]["has_more_page"]:
            return rows
        page += 1
        assert page < 500


def count(api, url: str, **params) -> int:
    body = api.get(url, params={**params, "response_option": 2}, timeout=10).json()
    return body["page_context"]["total"]


def admin_ids(sim, entity: str = "products") -> list[str]:
    return requests.get(sim.url + f"/admin/{entity}", timeout=5).json()["ids"]


def faults(sim) -> dict:
    return requests.get(sim.url + "/admin/faults", timeout=5).json()


# ---- accounts --------------------------------------------------------------------------------------------
def test_token_answer_and_bad_credentials():
    with running_simulator(records=5) as s:
        url = s.url + "/oauth/v2/token"
        good = requests.post(url, data=TOKEN_FORM, timeout=5).json()
        assert good["expires_in"] == 3600 and good["token_type"] == "Bearer"
        assert good["api_domain"] == s.url and good["access_token"].startswith("1000.")
        for field, value, error in [
            ("refresh_token", "nope", "invalid_code"),
            ("client_id", "nope", "invalid_client"),
            ("client_secret", "nope", "invalid_client_secret"),
        ]:
            answer = requests.post(url, data={**TOKEN_FORM, field: value}, timeout=5)
            assert answer.status_code == 200 and answer.json() == {"error": error}


def test_token_expiry_and_old_tokens_stay_valid():
    with running_simulator(records=5, token_lifetime_seconds=1, rate_limit_per_minute=0) as s:
        url = s.url + "/books/v3/users"
        params = {"organization_id": "10234695"}
        first = requests.post(s.url + "/oauth/v2/token", data=TOKEN_FORM, timeout=5).json()
        assert first["expires_in"] == 1
        second = requests.post(s.url + "/oauth/v2/token", data=TOKEN_FORM, timeout=5).json()
        for token in (first["access_token"], second["access_token"]):  # a new token does not revoke the old
            headers = {"Authorization": f"Zoho-oauthtoken {token}"}
            assert requests.get(url, params=params, headers=headers, timeout=5).status_code == 200
        headers = {"Authorization": f"Zoho-oauthtoken {first['access_token']}"}
        (expired,) = wait_until(
            lambda: (r := requests.get(url, params=params, headers=headers, timeout=5)).status_code == 401 and (r,),
            timeout=5,
        )
        assert expired.json()["code"] == 57
        assert expired.json()["message"] == "You are not authorized to perform this operation"


def test_admin_expire_tokens_invalidates_every_token():
    with running_simulator(records=5) as s:
        session = authorized_session(s)
        url = s.url + "/books/v3/users"
        assert session.get(url, timeout=5).status_code == 200
        assert requests.post(s.url + "/admin/expire-tokens", timeout=5).json()["expired"] >= 1
        answer = session.get(url, timeout=5)
        assert answer.status_code == 401 and answer.json()["code"] == 57
        assert authorized_session(s).get(url, timeout=5).status_code == 200  # a new token works


def test_refresh_throttle_denies_and_keeps_blocking():
    with running_simulator(records=5, refresh_limit=3, refresh_window_seconds=600) as s:
        url = s.url + "/oauth/v2/token"
        for _ in range(3):
            assert "access_token" in requests.post(url, data=TOKEN_FORM, timeout=5).json()
        for _ in range(2):
            denied = requests.post(url, data=TOKEN_FORM, timeout=5)
            assert denied.status_code in (200, 400)
            assert denied.json()["error"] == "Access Denied" and denied.json()["status"] == "failure"
        stats = requests.get(s.url + "/admin/stats", timeout=5).json()
        assert stats["token_refreshes"] == 3 and stats["token_errors"]["Access Denied"] == 2


# ---- errors ----------------------------------------------------------------------------------------------
def test_auth_org_and_url_errors(sim, api):
    url = sim.url + "/books/v3/invoices"
    org = {"organization_id": "10234695"}
    missing_auth = requests.get(url, params=org, timeout=5)
    assert missing_auth.status_code == 401 and missing_auth.json()["code"] == 14
    bad = requests.get(url, params=org, headers={"Authorization": "Zoho-oauthtoken 1000.x.y"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["code"] == 57
    no_org = requests.get(url, headers={"Authorization": api.headers["Authorization"]}, timeout=5)
    assert no_org.status_code == 400 and no_org.json()["code"] == 6024 and no_org.json()["error_info"]
    wrong = api.get(url, params={"organization_id": "999"}, timeout=5)
    assert 400 <= wrong.status_code < 500 and wrong.json()["code"] not in (0, None)
    unknown = api.get(sim.url + "/books/v3/nothing", timeout=5)
    assert unknown.status_code == 404 and unknown.json()["code"] == 5
    missing = api.get(sim.url + "/books/v3/invoices/123456789012345", timeout=5)
    assert missing.status_code == 404 and missing.json() == {
        "code": 1002,
        "message": "Invoice does not exist.",
    }
    assert api.post(url, timeout=5).status_code == 405
    assert api.get(url, params={"sort_column": "bogus"}, timeout=5).json()["code"] == 2


# ---- lists, paging, filters ------------------------------------------------------------------------------
def test_envelopes_and_generated_data_look_like_zoho(sim, api):
    body = api.get(sim.url + "/books/v3/invoices", params={"per_page": 500}, timeout=5).json()
    assert body["code"] == 0 and body["message"] == "success"
    context = body["page_context"]
    assert {
        "page",
        "per_page",
        "has_more_page",
        "report_name",
        "applied_filter",
        "sort_column",
        "sort_order",
    } <= set(context)
    assert context["per_page"] == 200 and len(body["invoices"]) == 200
    rows = list_all(api, sim.url + "/books/v3/invoices", "invoices")
    assert all(r["invoice_id"].isdigit() and 15 <= len(r["invoice_id"]) <= 18 for r in rows)
    assert all(TS.match(r["created_time"]) for r in rows)
    assert any(r["date"] < "2020-01-01" for r in rows) and any(r["date"] >= "2025-01-01" for r in rows)
    assert any("last_modified_time" not in r for r in rows)
    assert {r["currency_code"] for r in rows} <= {"IQD", "USD"}
    payment = api.get(sim.url + "/books/v3/customerpayments", timeout=5).json()["customerpayments"][0]
    detail = api.get(sim.url + f"/books/v3/customerpayments/{payment['payment_id']}", timeout=5).json()["payment"]
    assert "last_modified_time" not in detail and detail["invoices"][0]["amount_applied"]
    note = api.get(sim.url + "/books/v3/creditnotes", timeout=5).json()["creditnotes"][0]
    note_detail = api.get(sim.url + f"/books/v3/creditnotes/{note['creditnote_id']}", timeout=5).json()["creditnote"]
    assert note_detail.get("updated_time") == note.get("last_modified_time")
    assert api.get(sim.url + "/inventory/v1/settings/warehouses", timeout=5).json()["warehouses"]


def test_paging_totals_match_under_filters(sim, api):
    url = sim.url + "/books/v3/invoices"
    for params in (
        {},
        {"filter_by": "Status.Paid"},
        {"date_start": "2021-01-01", "date_end": "2022-12-31"},
        {"last_modified_time": "2024-01-01T00:00:00+0300", "sort_column": "last_modified_time"},
    ):
        rows = list_all(api, url, "invoices", **params)
        ids = [r["invoice_id"] for r in rows]
        assert len(ids) == len(set(ids)) == count(api, url, **params)
    assert count(api, url) == 450
    beyond = api.get(url, params={"page": 99}, timeout=5).json()
    assert beyond["invoices"] == [] and beyond["page_context"]["has_more_page"] is False


def test_date_filters_are_inclusive(sim, api):
    url = sim.url + "/books/v3/invoices"
    everything = list_all(api, url, "invoices")
    day = sorted(r["date"] for r in everything)[len(everything) // 2]
    rows = list_all(api, url, "invoices", date_start=day, date_end="2023-12-31")
    expected = {r["invoice_id"] for r in everything if day <= r["date"] <= "2023-12-31"}
    assert {r["invoice_id"] for r in rows} == expected and any(r["date"] == day for r in rows)
    assert api.get(url, params={"date_start": "2023-13-45"}, timeout=5).json()["code"] == 2


def test_last_modified_filter_and_sorting(sim, api):
    url = sim.url + "/books/v3/invoices"
    everything = list_all(api, url, "invoices")
    since = "2024-06-01T00:00:00+0300"
    cut = parse_ts(since)
    expected = {r["invoice_id"] for r in everything if (parse_ts(r.get("last_modified_time")) or 0) >= cut}
    for form in (since, "2024-06-01T00:00:00+03:00", "2024-05-31T21:00:00Z"):
        rows = list_all(api, url, "invoices", last_modified_time=form)
        assert {r["invoice_id"] for r in rows} == expected and expected
    # an unencoded "+" arrives as a space: still understood
    raw = api.get(url + "?last_modified_time=2024-06-01T00:00:00+0300&response_option=2", timeout=5).json()
    assert raw["page_context"]["total"] == len(expected)
    ordered = list_all(api, url, "invoices", sort_column="last_modified_time", sort_order="D")
    stamps = [parse_ts(r["last_modified_time"]) for r in ordered if "last_modified_time" in r]
    assert stamps == sorted(stamps, reverse=True)
    ascending = list_all(api, url, "invoices", sort_column="date", sort_order="A")
    assert [r["date"] for r in ascending] == sorted(r["date"] for r in ascending)
    assert api.get(url, params={"last_modified_time": "yesterday"}, timeout=5).json()["code"] == 2


def test_creditnote_modified_filter_can_be_ignored():
    with running_simulator(records=40, rate_limit_per_minute=0, creditnotes_modified_filter=False) as s:
        api = authorized_session(s)
        url = s.url + "/books/v3/creditnotes"
        assert count(api, url, last_modified_time="2030-01-01T00:00:00+0300") == 40
        assert count(api, s.url + "/books/v3/invoices", last_modified_time="2030-01-01T00:00:00+0300") == 0


def test_status_filters_and_contact_type(sim, api):
    items_url = sim.url + "/inventory/v1/items"
    everything = list_all(api, items_url, "items", filter_by="Status.All")
    assert len(everything) == 420
    default = list_all(api, items_url, "items")
    assert {r["status"] for r in default} == {"active"}
    assert len(default) == sum(r["status"] == "active" for r in everything) < 420
    vendors = list_all(api, sim.url + "/books/v3/contacts", "contacts", contact_type="vendor", filter_by="Status.All")
    assert len(vendors) == 60 and {c["contact_type"] for c in vendors} == {"vendor"}
    void = list_all(api, sim.url + "/books/v3/invoices", "invoices", filter_by="Status.Void")
    assert void and {r["status"] for r in void} == {"void"}


def test_lists_are_abridged_and_gets_are_full(sim, api):
    invoice = api.get(sim.url + "/books/v3/invoices", timeout=5).json()["invoices"][0]
    assert "line_items" not in invoice and "billing_address" not in invoice
    detail = api.get(sim.url + f"/books/v3/invoices/{invoice['invoice_id']}", timeout=5).json()["invoice"]
    assert 1 <= len(detail["line_items"]) <= 9 and detail["line_items"][0]["line_item_id"].isdigit()
    contact = api.get(sim.url + "/books/v3/contacts", timeout=5).json()["contacts"][0]
    assert "contact_persons" not in contact and "billing_address" not in contact
    full = api.get(sim.url + f"/books/v3/contacts/{contact['contact_id']}", timeout=5).json()["contact"]
    assert full["contact_persons"] and full["billing_address"]
    adjustment = api.get(sim.url + "/inventory/v1/inventoryadjustments", timeout=5).json()["inventory_adjustments"][0]
    assert "line_items" not in adjustment
    adj_url = sim.url + f"/inventory/v1/inventoryadjustments/{adjustment['inventory_adjustment_id']}"
    assert "quantity_adjusted" in api.get(adj_url, timeout=5).json()["inventory_adjustment"]["line_items"][0]
    books = api.get(sim.url + "/inventory/v1/pricebooks", params={"per_page": 200}, timeout=5).json()["pricebooks"]
    assert any(b["pricebook_items"] for b in books)


def test_items_stock_per_warehouse(sim, api):
    warehouses = api.get(sim.url + "/inventory/v1/settings/warehouses", timeout=5).json()["warehouses"]
    assert 2 <= len(warehouses) <= 3
    row = api.get(sim.url + "/inventory/v1/items", timeout=5).json()["items"][0]
    assert "warehouses" not in row and "stock_on_hand" in row and "available_stock" in row
    item = api.get(sim.url + f"/inventory/v1/items/{row['item_id']}", timeout=5).json()["item"]
    fields = {
        "warehouse_id",
        "warehouse_name",
        "warehouse_stock_on_hand",
        "warehouse_available_stock",
        "warehouse_actual_available_stock",
        "warehouse_committed_stock",
        "warehouse_available_for_sale_stock",
    }
    assert all(fields <= set(w) for w in item["warehouses"])
    assert sum(w["warehouse_stock_on_hand"] for w in item["warehouses"]) == item["stock_on_hand"]
    second = item["warehouses"][1]
    listed = list_all(
        api,
        sim.url + "/inventory/v1/items",
        "items",
        warehouse_id=second["warehouse_id"],
        filter_by="Status.All",
    )
    mine = next(r for r in listed if r["item_id"] == item["item_id"])
    assert mine["stock_on_hand"] == second["warehouse_stock_on_hand"]
    assert mine["available_stock"] == second["warehouse_available_stock"]
    books_item = api.get(sim.url + f"/books/v3/items/{row['item_id']}", timeout=5).json()["item"]
    assert books_item == item


def test_itemdetails_batch(sim, api):
    ids = [r["item_id"] for r in list_all(api, sim.url + "/inventory/v1/items", "items", filter_by="Status.All")]
    answer = api.get(sim.url + "/books/v3/itemdetails", params={"item_ids": ",".join(ids[:100])}, timeout=5)
    items = answer.json()["items"]
    assert answer.status_code == 200 and [i["item_id"] for i in items] == ids[:100]
    assert all("warehouses" in i for i in items)
    too_many = api.get(sim.url + "/books/v3/itemdetails", params={"item_ids": ",".join(ids[:101])}, timeout=5)
    assert too_many.status_code == 400 and too_many.json()["code"] == 2
    partial = api.get(sim.url + "/books/v3/itemdetails", params={"item_ids": f"{ids[0]},999999999999999"}, timeout=5)
    assert [i["item_id"] for i in partial.json()["items"]] == [ids[0]]


# ---- limits ----------------------------------------------------------------------------------------------
def test_per_minute_limit_44_counts_books_and_inventory_together():
    with running_simulator(records=5, rate_limit_per_minute=6) as s:
        api = authorized_session(s)
        for k in range(6):
            path = "/books/v3/users" if k % 2 else "/inventory/v1/items"
            answer = api.get(s.url + path, timeout=5)
            assert answer.status_code == 200 and answer.headers["X-Rate-Limit-Limit"] == "10000"
        blocked = api.get(s.url + "/books/v3/users", timeout=5)
        assert blocked.status_code == 429 and blocked.json()["code"] == 44
        assert "X-Rate-Limit-Remaining" in blocked.headers and "X-Rate-Limit-Reset" in blocked.headers
        stats = requests.get(s.url + "/admin/stats", timeout=5).json()
        assert stats["rejected"]["44"] == 1 and stats["peak_per_minute_window"] == 7 and stats["api_calls"] == 6
        requests.post(s.url + "/admin/reset-limits", timeout=5)
        assert api.get(s.url + "/books/v3/users", timeout=5).status_code == 200


def test_daily_limit_45_and_headers():
    with running_simulator(records=5, daily_limit=3) as s:
        api = authorized_session(s)
        remaining = [api.get(s.url + "/books/v3/users", timeout=5).headers["X-Rate-Limit-Remaining"] for _ in range(3)]
        assert remaining == ["2", "1", "0"]
        blocked = api.get(s.url + "/books/v3/users", timeout=5)
        assert blocked.status_code == 429
        assert blocked.json() == {
            "code": 45,
            "message": "The API call for this organization has exceeded the maximum call rate limit of 3.",
        }
        assert int(blocked.headers["X-Rate-Limit-Reset"]) <= 86400
        # the limits can be changed at runtime
        requests.post(s.url + "/admin/limits", json={"daily_limit": 10}, timeout=5)
        assert api.get(s.url + "/books/v3/users", timeout=5).status_code == 200


def test_concurrency_limit_1070():
    with running_simulator(records=5, concurrency_limit=2, rate_limit_per_minute=0) as s:
        api = authorized_session(s)
        fault = {"kind": "timeout", "count": 2, "delay_seconds": 1.5, "path_contains": "/users"}
        requests.post(s.url + "/admin/faults", json=fault, timeout=5)
        slow = [threading.Thread(target=api.get, args=(s.url + "/books/v3/users",), kwargs={"timeout": 10})]
        slow.append(threading.Thread(target=authorized_session(s).get, args=(s.url + "/books/v3/users",)))
        for thread in slow:
            thread.start()
        wait_until(lambda: requests.get(s.url + "/admin/stats", timeout=5).json()["in_flight"] == 2)
        third = authorized_session(s).get(s.url + "/books/v3/contacts", timeout=5)
        assert third.status_code == 429 and third.json()["code"] == 1070
        assert "X-Rate-Limit-Limit" in third.headers
        for thread in slow:
            thread.join(timeout=10)
        assert authorized_session(s).get(s.url + "/books/v3/contacts", timeout=5).status_code == 200
        assert requests.get(s.url + "/admin/stats", timeout=5).json()["peak_concurrency"] == 2


# ---- faults ----------------------------------------------------------------------------------------------
def arm(sim, **spec):
    answer = requests.post(sim.url + "/admin/faults", json=spec, timeout=5)
    assert answer.status_code == 200, answer.text


def test_fault_500_503_malformed(sim, api):
    url = sim.url + "/books/v3/bills"
    arm(sim, kind="500", path_contains="/bills")
    failed = api.get(url, timeout=5)
    assert failed.status_code == 500 and failed.json()["code"] == 1000
    arm(sim, kind="503", path_contains="/bills")
    unavailable = api.get(url, timeout=5)
    assert unavailable.status_code == 503 and "text/html" in unavailable.headers["Content-Type"]
    arm(sim, kind="malformed", count=2, path_contains="/bills")
    for _ in range(2):
        broken = api.get(url, timeout=5)
        assert broken.status_code == 200
        with pytest.raises(ValueError):
            json.loads(broken.content)
    assert api.get(url, timeout=5).json()["code"] == 0
    assert api.get(sim.url + "/books/v3/invoices", timeout=5).status_code == 200


def test_fault_timeout_delays_the_answer(sim, api):
    arm(sim, kind="timeout", delay_seconds=0.6, path_contains="/salesorders")
    started = time.monotonic()
    answer = api.get(sim.url + "/books/v3/salesorders", timeout=10)
    assert answer.status_code == 200 and time.monotonic() - started >= 0.6
    with pytest.raises(requests.exceptions.Timeout):
        arm(sim, kind="timeout", delay_seconds=2, path_contains="/salesorders")
        api.get(sim.url + "/books/v3/salesorders", timeout=0.3)


def test_fault_duplicate_repeats_a_record_across_pages(sim, api):
    url = sim.url + "/books/v3/invoices"
    arm(sim, kind="duplicate", path_contains="/invoices")
    first = api.get(url, params={"page": 1}, timeout=5).json()["invoices"]
    second = api.get(url, params={"page": 2}, timeout=5).json()["invoices"]
    assert second[0]["invoice_id"] == first[-1]["invoice_id"]
    clean = api.get(url, params={"page": 2}, timeout=5).json()["invoices"]
    assert clean[0]["invoice_id"] != first[-1]["invoice_id"] and clean[0] == second[1]


def test_fault_503_can_say_retry_after(sim, api):
    url = sim.url + "/books/v3/bills"
    arm(sim, kind="503", path_contains="/bills", retry_after=7)
    unavailable = api.get(url, timeout=5)
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "7"
    arm(sim, kind="503", path_contains="/bills")
    assert "Retry-After" not in api.get(url, timeout=5).headers
    wrong = requests.post(sim.url + "/admin/faults", json={"kind": "500", "retry_after": 3}, timeout=5)
    assert wrong.status_code == 400


@pytest.fixture
def items_sim():
    """A simulator of its own (the mutations change its data) with 2+ pages of active items."""
    with running_simulator(
        records=5,
        entity_records={"products": 450},
        rate_limit_per_minute=0,
        daily_limit=0,
        concurrency_limit=0,
    ) as running:
        yield running, authorized_session(running), running.url + "/inventory/v1/items"


def mutate_between_pages(sim, api, url: str, **spec) -> tuple[list[str], list[dict], dict]:
    """(ids listed before, rows listed while the mutation strikes after page 1, what it did)."""
    before = [r["item_id"] for r in list_all(api, url, "items")]
    assert len(before) > 200
    arm(sim, kind="mutate", path_contains="/items", after_page=1, **spec)
    rows = list_all(api, url, "items")
    (applied,) = faults(sim)["applied"]
    return before, rows, applied


def test_mutate_delete_between_pages_hides_a_live_record(items_sim):
    sim, api, url = items_sim
    before, rows, applied = mutate_between_pages(sim, api, url, action="delete")
    assert applied == {
        "kind": "mutate",
        "action": "delete",
        "path": "/inventory/v1/items",
        "after_page": 1,
        "entity": "products",
        "zoho_id": before[0],
    }
    assert api.get(f"{url}/{before[0]}", timeout=5).json()["code"] == 1002
    seen = [r["item_id"] for r in rows]
    # The offset shift: page 2's first record moved onto page 1, already served: a live record is never listed.
    assert before[200] not in seen and api.get(f"{url}/{before[200]}", timeout=5).status_code == 200
    assert seen == before[:200] + before[201:]
    assert faults(sim)["armed"] == []


def test_mutate_insert_between_pages_repeats_a_record(items_sim):
    sim, api, url = items_sim
    before, rows, applied = mutate_between_pages(sim, api, url, action="insert")
    new_id = applied["zoho_id"]
    assert applied["entity"] == "products" and new_id not in before and applied["name"].startswith("AAA ")
    # The new record sorts first, after page 1 was served: everything moves one place down.
    assert [r["item_id"] for r in rows] == before[:200] + before[199:]
    created = api.get(f"{url}/{new_id}", timeout=5).json()["item"]
    assert created["name"] == applied["name"] and parse_ts(created["created_time"]) >= time.time() - 5
    assert list_all(api, url, "items")[0]["item_id"] == new_id


def test_mutate_rename_between_pages_moves_the_record(items_sim):
    sim, api, url = items_sim
    before, rows, applied = mutate_between_pages(sim, api, url, action="rename")
    assert applied["zoho_id"] == before[0]
    # Renamed to sort last: seen on page 1 under its old name and again at the end; page 2's first is missed.
    assert [r["item_id"] for r in rows] == before[:200] + before[201:] + [before[0]]
    assert rows[0]["name"] != applied["name"] == rows[-1]["name"]
    assert parse_ts(rows[-1]["last_modified_time"]) >= time.time() - 5


def test_mutate_edit_and_its_options(items_sim):
    sim, api, url = items_sim
    before, rows, applied = mutate_between_pages(sim, api, url, action="edit", count=2)
    assert [r["item_id"] for r in rows] == before and applied["zoho_id"] == before[0]
    edited = api.get(f"{url}/{before[0]}", timeout=5).json()["item"]
    assert edited["description"].endswith("(edited)") and parse_ts(edited["last_modified_time"]) >= time.time() - 5
    # count 2: the next listing is struck too
    assert [f["remaining"] for f in faults(sim)["armed"]] == [1]
    list_all(api, url, "items")
    assert len(faults(sim)["applied"]) == 2 and faults(sim)["armed"] == []
    # zoho_id names the record; after_page 2 waits for page 2; DELETE forgets what was applied
    requests.delete(sim.url + "/admin/faults", timeout=5)
    arm(sim, kind="mutate", path_contains="/items", action="delete", after_page=2, zoho_id=before[-1])
    api.get(url, params={"page": 1}, timeout=5)
    assert faults(sim)["applied"] == []
    api.get(url, params={"page": 2}, timeout=5)
    (applied,) = faults(sim)["applied"]
    assert applied["zoho_id"] == before[-1] and before[-1] not in admin_ids(sim)
    # what cannot be done is reported, not raised; a bad spec is refused
    arm(sim, kind="mutate", path_contains="/invoices", action="rename")
    assert api.get(sim.url + "/books/v3/invoices", timeout=5).status_code == 200
    assert "no name" in faults(sim)["applied"][-1]["error"]
    for bad in ({"action": "explode"}, {"action": "delete", "after_page": 0}):
        answer = requests.post(sim.url + "/admin/faults", json={"kind": "mutate", **bad}, timeout=5)
        assert answer.status_code == 400


def test_random_faults():
    with running_simulator(records=5, fault_rate=1.0, fault_seed=7, rate_limit_per_minute=0) as s:
        api = authorized_session(s)
        statuses = {api.get(s.url + "/books/v3/users", timeout=5).status_code for _ in range(30)}
        assert statuses <= {200, 500, 503} and {500, 503} <= statuses
        kinds = requests.get(s.url + "/admin/stats", timeout=5).json()["faults_injected"]
        assert set(kinds) == {"500", "503", "malformed"}
    with running_simulator(
        records=5,
        fault_rate=1.0,
        fault_kinds=("timeout",),
        random_timeout_seconds=0.3,
        rate_limit_per_minute=0,
    ) as s:
        started = time.monotonic()
        assert authorized_session(s).get(s.url + "/books/v3/users", timeout=5).status_code == 200
        assert time.monotonic() - started >= 0.3


# ---- admin data changes and webhooks ---------------------------------------------------------------------
def test_admin_put_and_delete_change_what_zoho_answers(sim, api):
    url = sim.url + "/books/v3/invoices"
    before = api.get(url, params={"sort_column": "last_modified_time", "sort_order": "D"}, timeout=5).json()
    old = api.get(url + f"/{before['invoices'][-1]['invoice_id']}", timeout=5).json()["invoice"]
    changed = {**old, "status": "void", "last_modified_time": "2001-01-01T00:00:00+0300"}
    put = requests.put(sim.url + f"/admin/invoices/{old['invoice_id']}", json={"invoice": changed}, timeout=5)
    assert put.status_code == 200
    fresh = api.get(url + f"/{old['invoice_id']}", timeout=5).json()["invoice"]
    assert fresh["status"] == "void" and fresh["created_time"] == old["created_time"]
    assert parse_ts(fresh["last_modified_time"]) >= time.time() - 5
    newest = api.get(url, params={"sort_column": "last_modified_time", "sort_order": "D"}, timeout=5).json()
    assert newest["invoices"][0]["invoice_id"] == old["invoice_id"]
    created = requests.put(sim.url + "/admin/invoices/123450000000001", json={"invoice_number": "INV-X"}, timeout=5)
    assert created.json()["record"]["invoice_id"] == "123450000000001"
    assert count(api, url) == 451
    assert requests.delete(sim.url + "/admin/invoices/123450000000001", timeout=5).status_code == 200
    gone = api.get(url + "/123450000000001", timeout=5)
    assert gone.status_code == 404 and gone.json()["code"] == 1002
    assert count(api, url) == 450
    assert requests.delete(sim.url + "/admin/invoices/123450000000001", timeout=5).status_code == 404


def test_admin_customers_are_contacts_of_type_customer(sim, api):
    answer = requests.put(sim.url + "/admin/customers/777000000000001", json={"contact_name": "Test"}, timeout=5)
    assert answer.json()["record"]["contact_type"] == "customer"
    assert requests.get(sim.url + "/admin/vendors/777000000000001", timeout=5).status_code == 404
    contact = api.get(sim.url + "/books/v3/contacts/777000000000001", timeout=5).json()["contact"]
    assert contact["contact_name"] == "Test" and TS.match(contact["last_modified_time"])
    patch_url = sim.url + "/admin/customers/777000000000001"
    patched = requests.patch(patch_url, json={"status": "inactive"}, timeout=5).json()["record"]
    assert patched["contact_name"] == "Test" and patched["status"] == "inactive"
    assert requests.patch(sim.url + "/admin/customers/1", json={}, timeout=5).status_code == 404
    users = requests.put(sim.url + "/admin/users/777000000000002", json={"name": "U", "status": "active"}, timeout=5)
    assert "last_modified_time" not in users.json()["record"]
    assert requests.put(sim.url + "/admin/nothing/1", json={}, timeout=5).status_code == 404
    requests.delete(sim.url + "/admin/customers/777000000000001", timeout=5)
    requests.delete(sim.url + "/admin/users/777000000000002", timeout=5)


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        return


@contextmanager
def webhook_receiver(path: str = "/webhooks/zoho?source=zoho") -> Iterator[str]:
    """A local HTTP server recording POSTs in `_Receiver.received`; yields the URL to send them to."""
    _Receiver.received = []
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{receiver.server_address[1]}{path}"
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_webhooks_post_changes_as_zoho_would():
    with (
        webhook_receiver() as hook,
        running_simulator(records=5, webhook_url=hook, webhook_token="tok", webhook_secret="s3cr3t12345678") as s,
    ):
        bill_id = requests.get(s.url + "/admin/bills", timeout=5).json()["ids"][0]
        record = requests.get(s.url + f"/admin/bills/{bill_id}", timeout=5).json()["record"]
        requests.put(s.url + f"/admin/bills/{bill_id}", json={**record, "status": "paid"}, timeout=5)
        requests.delete(s.url + f"/admin/bills/{bill_id}", timeout=5)
        wait_until(lambda: len(_Receiver.received) == 2)
        stats_url = s.url + "/admin/stats"
        stats = wait_until(lambda: (j := requests.get(stats_url, timeout=5).json())["webhooks_sent"] == 2 and j)
        assert [d["event"] for d in stats["webhook_deliveries"]] == ["saved", "deleted"]
    (path, headers, body), (deleted_path, _, deleted_body) = _Receiver.received
    saved = json.loads(body)["bill"]
    assert saved["bill_id"] == bill_id and saved["status"] == "paid" and saved["line_items"]
    assert headers["x-tds-token"] == "tok"
    expected = hmac.new(b"s3cr3t12345678", b"sourcezoho" + body, hashlib.sha256).hexdigest()
    assert headers["x-zoho-webhook-signature"] == expected
    assert path == "/webhooks/zoho?source=zoho"
    assert "event=deleted" in deleted_path and json.loads(deleted_body)["bill"]["bill_id"] == bill_id


def delivered(sim, timeout: float = 15.0) -> dict:
    """`GET /admin/webhooks` once nothing is pending (every delivery final), within `timeout` seconds."""
    url = sim.url + "/admin/webhooks"
    return wait_until(lambda: (j := requests.get(url, timeout=5).json())["pending"] == 0 and j, timeout=timeout)


def signed_by(secret: str, path: str, headers: dict, body: bytes) -> bool:
    params = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
    signed = "".join(f"{k}{params[k]}" for k in sorted(params)).encode() + body
    return headers["x-zoho-webhook-signature"] == hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def edit_products(sim, n: int) -> list[int]:
    """Make `n` changes one after another (product rates 1000, 1001, ...); returns those rates, in order."""
    ids = admin_ids(sim)
    for k in range(n):
        url = sim.url + f"/admin/products/{ids[k % len(ids)]}"
        assert requests.patch(url, json={"rate": 1000 + k}, timeout=5).status_code == 200
    return [1000 + k for k in range(n)]


def rates(bodies: list[bytes]) -> list[int]:
    """The product rate each webhook body carries (which change it is)."""
    return [json.loads(body)["item"]["rate"] for body in bodies]


SECRET = "s3cr3t12345678"


def test_webhook_duplicates_arrive_twice_identical_and_later():
    with (
        capture_server() as hook,
        running_simulator(
            records=5,
            webhook_url=hook.url,
            webhook_secret=SECRET,
            webhook_duplicate_rate=1.0,
            webhook_duplicate_delay_seconds=0.05,
        ) as s,
    ):
        made = edit_products(s, 3)
        state = delivered(s)
    bodies = hook.bodies()
    assert len(bodies) == 6 and all(bodies.count(body) == 2 for body in bodies)
    assert rates(list(dict.fromkeys(bodies))) == made  # first arrivals in the order the changes were made
    for path, headers, body in hook.received:
        assert signed_by(SECRET, path, headers, body)
    copies = [(d["delivery"], d["duplicate"], d["attempt"], d["ok"], d["final"]) for d in state["deliveries"]]
    assert sorted(copies) == sorted([(n, dup, 1, True, True) for n in (1, 2, 3) for dup in (False, True)])
    # a copy follows its original's attempt
    first = {d["delivery"]: i for i, d in reversed(list(enumerate(state["deliveries"]))) if not d["duplicate"]}
    assert all(first[d["delivery"]] < i for i, d in enumerate(state["deliveries"]) if d["duplicate"])
    assert state["sent"] == 6 and state["failed"] == 0 and state["held"] == 0


def test_webhook_reordering_shuffles_windows_loses_nothing_and_is_seeded():
    orders = []
    for _ in range(2):
        with (
            capture_server() as hook,
            running_simulator(
                records=12,
                webhook_url=hook.url,
                webhook_reorder_window=5,
                webhook_reorder_flush_seconds=10,  # both windows fill: no flush by time here
                webhook_seed=11,
            ) as s,
        ):
            made = edit_products(s, 10)
            delivered(s)
        bodies = hook.bodies()
        got = rates(bodies)
        assert len(bodies) == len(set(bodies)) == 10 and sorted(got) == made and got != made
        assert sorted(got[:5]) == made[:5] and got[:5] != made[:5] and got[5:] != made[5:]  # windows of 5
        orders.append(got)
    assert orders[0] == orders[1]  # the same seed and changes: the same order


def test_webhook_partial_reorder_window_is_flushed_in_bounded_time():
    with capture_server() as hook, running_simulator(records=5, webhook_url=hook.url) as s:
        answer = requests.post(
            s.url + "/admin/webhooks", json={"reorder_window": 50, "reorder_flush_seconds": 0.5}, timeout=5
        )
        assert answer.status_code == 200 and answer.json()["reorder_window"] == 50
        started = time.monotonic()
        made = edit_products(s, 3)
        held = requests.get(s.url + "/admin/webhooks", timeout=5).json()
        if time.monotonic() - started < 0.4:  # (a very slow machine may already have flushed them)
            assert held["held"] == held["pending"] == 3 and not hook.bodies()
        delivered(s, timeout=5)
        assert time.monotonic() - started < 3
        assert sorted(rates(hook.bodies())) == made
        assert s.config.webhook_reorder_window == 50


def test_webhook_answered_503_is_retried_then_delivered():
    with (
        capture_server(answers=(503, 503)) as hook,
        running_simulator(
            records=5,
            webhook_url=hook.url,
            webhook_token="tok",
            webhook_secret=SECRET,
            webhook_retry_delay_seconds=0.05,
        ) as s,
    ):
        made = edit_products(s, 1)
        state = delivered(s)
        stats = requests.get(s.url + "/admin/stats", timeout=5).json()
    bodies = hook.bodies()
    assert rates(bodies) == made * 3 and len(set(bodies)) == 1  # the same bytes each time
    for path, headers, body in hook.received:
        assert signed_by(SECRET, path, headers, body) and headers["x-tds-token"] == "tok"
    attempts = [(d["attempt"], d["status"], d["ok"], d["final"], d.get("retry_in")) for d in state["deliveries"]]
    assert attempts == [(1, 503, False, False, 0.05), (2, 503, False, False, 0.1), (3, 200, True, True, None)]
    assert (state["sent"], state["failed"], state["given_up"]) == (1, 2, 0)
    assert stats["webhooks_pending"] == 0 and stats["webhooks_failed"] == 2


def test_webhook_retries_are_bounded_and_unreachable_receivers_retried():
    with (
        capture_server(answers=(500,) * 10) as hook,
        running_simulator(records=5, webhook_url=hook.url, webhook_retries=2, webhook_retry_delay_seconds=0.02) as s,
    ):
        edit_products(s, 1)
        state = delivered(s)
        assert len(hook.received) == 3 and state["given_up"] == 1
        assert [d["final"] for d in state["deliveries"]] == [False, False, True]
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks"
    with running_simulator(records=5, webhook_url=dead) as s:  # default: 3 retries, 1 s then doubling
        edit_products(s, 1)
        url = s.url + "/admin/webhooks"
        (first,) = wait_until(lambda: requests.get(url, timeout=5).json()["deliveries"], timeout=10)
        assert first["ok"] is False and first["status"] is None and "error" in first
        assert first["retry_in"] == 1.0 and first["final"] is False
        assert requests.get(url, timeout=5).json()["pending"] == 1


def test_admin_webhooks_route_validates_settings():
    with running_simulator(records=5) as s:
        url = s.url + "/admin/webhooks"
        off = requests.get(url, timeout=5).json()
        assert off["enabled"] is False and off["pending"] == 0 and off["retries"] == 3
        assert requests.post(url, json={"duplicate_rate": 0.5}, timeout=5).status_code == 409
    with capture_server() as hook, running_simulator(records=5, webhook_url=hook.url) as s:
        url = s.url + "/admin/webhooks"
        answer = requests.post(url, json={"duplicate_rate": 0.25, "reorder_window": 4}, timeout=5).json()
        assert answer["enabled"] is True and answer["duplicate_rate"] == 0.25 and answer["reorder_window"] == 4
        assert s.config.webhook_duplicate_rate == 0.25
        for bad in (
            {"duplicate_rate": 1.5},
            {"reorder_window": 2.5},
            {"retries": 11},
            {"retries": True},
            {"retry_delay_seconds": "1"},
            {"nonsense": 1},
            {},
        ):
            assert requests.post(url, json=bad, timeout=5).status_code == 400, bad
        assert requests.get(url, timeout=5).json()["duplicate_rate"] == 0.25  # a refused change changes nothing
    with pytest.raises(ValueError), running_simulator(webhook_url="http://127.0.0.1:1/x", webhook_retries=50):
        pass


# ---- version shapes and encodings -----------------------------------------------------------------------
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMES = ("created_time", "last_modified_time", "updated_time")


def test_version_styles_shape_what_is_served_not_what_is_kept():
    styles = {"products": "date", "customers": "none", "invoices": "list_only", "credit_notes": "date"}
    with running_simulator(records=30, rate_limit_per_minute=0, version_style=styles) as s:
        api = authorized_session(s)
        url, everything = s.url + "/inventory/v1/items", {"filter_by": "Status.All"}
        real = {i: requests.get(s.url + f"/admin/products/{i}", timeout=5).json()["record"] for i in admin_ids(s)}
        items = list_all(api, url, "items", **everything)
        dated = next(r for r in items if "last_modified_time" in r)
        detail = api.get(f"{url}/{dated['item_id']}", timeout=5).json()["item"]
        batch = api.get(s.url + "/books/v3/itemdetails", params={"item_ids": dated["item_id"]}, timeout=5)
        for row in (*items, detail, batch.json()["items"][0]):
            stamp = real[row["item_id"]].get("last_modified_time")
            assert row.get("last_modified_time") == (stamp and format_ts(parse_ts(stamp))[:10])
            assert TS.match(row["created_time"])
        assert DAY.match(detail["last_modified_time"])
        # filters and sorting still use the real times
        ordered = list_all(api, url, "items", **everything, sort_column="last_modified_time", sort_order="D")
        key = {i: parse_ts(r.get("last_modified_time")) or 0 for i, r in real.items()}
        assert [key[r["item_id"]] for r in ordered] == sorted(key.values(), reverse=True)
        since = sorted(v for v in key.values() if v)[len(key) // 2]
        listed = list_all(api, url, "items", **everything, last_modified_time=format_ts(since))
        assert {r["item_id"] for r in listed} == {i for i, v in key.items() if v >= since}

        contacts = list_all(api, s.url + "/books/v3/contacts", "contacts", filter_by="Status.All")
        customer = next(c for c in contacts if c["contact_type"] == "customer")
        full = api.get(s.url + f"/books/v3/contacts/{customer['contact_id']}", timeout=5).json()["contact"]
        assert not any(t in row for row in (customer, full) for t in TIMES)
        assert all(TS.match(c["created_time"]) for c in contacts if c["contact_type"] == "vendor")

        invoice = next(r for r in list_all(api, s.url + "/books/v3/invoices", "invoices") if "last_modified_time" in r)
        assert TS.match(invoice["last_modified_time"])
        got = api.get(s.url + f"/books/v3/invoices/{invoice['invoice_id']}", timeout=5).json()["invoice"]
        assert "last_modified_time" not in got and got["created_time"] == invoice["created_time"]

        note = api.get(s.url + "/books/v3/creditnotes", timeout=5).json()["creditnotes"][0]
        note_detail = api.get(s.url + f"/books/v3/creditnotes/{note['creditnote_id']}", timeout=5).json()
        assert (
            DAY.match(note["last_modified_time"])
            and note_detail["creditnote"]["updated_time"] == note["last_modified_time"]
        )
    with pytest.raises(ValueError), running_simulator(version_style={"products": "hourly"}):
        pass


def test_two_edits_in_one_second_carry_the_same_time():
    # Zoho's times have 1-second resolution: two saves within a second are not told apart by the time.
    with running_simulator(records=5) as s:
        first, second = admin_ids(s)[:2]
        for _ in range(5):
            wait_until(lambda: time.time() % 1 < 0.5, timeout=2, interval=0.01)
            stamps = [
                requests.patch(s.url + f"/admin/products/{i}", json={"rate": 250}, timeout=5).json()["record"][
                    "last_modified_time"
                ]
                for i in (first, second)
            ]
            if stamps[0] == stamps[1]:
                break
        assert stamps[0] == stamps[1] and TS.match(stamps[0])


def test_strings_utf8_cannot_carry_are_served_as_json():
    with webhook_receiver() as hook, running_simulator(records=5, webhook_url=hook) as s:
        api = authorized_session(s)
        body = b'{"name": "x\\ud800", "description": "a\\u0000b", "status": "active"}'
        stored = requests.put(s.url + "/admin/products/900000000000009", data=body, timeout=5)
        assert stored.status_code == 200 and stored.json()["record"]["name"] == "x\ud800"
        item = api.get(s.url + "/inventory/v1/items/900000000000009", timeout=5).json()["item"]
        assert item["name"] == "x\ud800" and item["description"] == "a\x00b"
        row = next(r for r in list_all(api, s.url + "/inventory/v1/items", "items") if r["item_id"] == item["item_id"])
        assert row["name"] == "x\ud800" and row["description"] == "a\x00b"
        # the webhook sender survives it: this delivery and the next one arrive
        requests.patch(s.url + "/admin/products/900000000000009", json={"status": "inactive"}, timeout=5)
        wait_until(lambda: len(_Receiver.received) == 2)
    assert [json.loads(body)["item"]["name"] for _, _, body in _Receiver.received] == ["x\ud800", "x\ud800"]


# ---- fixtures and the command line -----------------------------------------------------------------------
def test_fixtures_are_loaded(tmp_path):
    customers = [{"contact_id": "900000000000001", "contact_name": "بغداد للتجارة", "status": "active"}]
    notes = [
        {
            "creditnote_id": "900000000000002",
            "creditnote_number": "CN-1",
            "date": "2019-05-01",
            "status": "open",
            "created_time": "2019-05-01T10:00:00+0300",
            "updated_time": "2019-05-02T10:00:00+0300",
            "line_items": [],
        }
    ]
    (tmp_path / "customers.json").write_text(json.dumps(customers), encoding="utf-8")
    (tmp_path / "credit_notes.json").write_text(json.dumps({"creditnotes": notes}), encoding="utf-8")
    with running_simulator(records=7, fixtures_dir=tmp_path) as s:
        api = authorized_session(s)
        listed = api.get(s.url + "/books/v3/contacts", params={"contact_type": "customer"}, timeout=5).json()
        assert [c["contact_id"] for c in listed["contacts"]] == ["900000000000001"]
        assert listed["contacts"][0]["contact_type"] == "customer"
        note = api.get(s.url + "/books/v3/creditnotes", timeout=5).json()["creditnotes"]
        assert note[0]["last_modified_time"] == "2019-05-02T10:00:00+0300"
        detail = api.get(s.url + "/books/v3/creditnotes/900000000000002", timeout=5).json()["creditnote"]
        assert detail["updated_time"] == "2019-05-02T10:00:00+0300" and "last_modified_time" not in detail
        invoices = api.get(s.url + "/books/v3/invoices", timeout=5).json()["invoices"]
        assert len(invoices) == 7 and {i["customer_id"] for i in invoices} == {"900000000000001"}


def test_command_line_flags_build_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = (
        "--port 0 --records 9 --entity-records products=50000 --entity-records invoices=10 "
        "--rate-limit-per-minute 0 --token-lifetime 60 --webhook-url http://127.0.0.1:1/x "
        "--no-creditnotes-modified-filter --organization-id 42 --version-style products=date "
        "--version-style stock_adjustments=none --webhook-duplicate-rate 0.3 --webhook-reorder-window 5 "
        "--webhook-retries 4 --webhook-retry-delay 0.5 --webhook-seed 9"
    )
    args = parser.parse_args(flags.split())
    config = config_from_args(args)
    assert config.entity_records == {"products": 50000, "invoices": 10} and config.records == 9
    assert config.rate_limit_per_minute == 0 and config.token_lifetime_seconds == 60
    assert config.creditnotes_modified_filter is False and config.organization_id == "42"
    assert config.version_style == {"products": "date", "stock_adjustments": "none"}
    assert (config.webhook_duplicate_rate, config.webhook_reorder_window) == (0.3, 5)
    assert (config.webhook_retries, config.webhook_retry_delay_seconds, config.webhook_seed) == (4, 0.5, 9)
    defaults = config_from_args(parser.parse_args([]))
    assert (defaults.webhook_duplicate_rate, defaults.webhook_reorder_window, defaults.webhook_retries) == (0, 0, 3)
    assert defaults.webhook_retry_delay_seconds == 1.0 and defaults.webhook_seed is None
    for wrong in (["--entity-records", "nonsense=3"], ["--version-style", "products=hourly"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
