"""The Zoho client over real HTTP against the simulator, on real databases.

SQLite gets smoke tests; the full matrix runs on PostgreSQL (a fresh schema per test). Every wait is bounded.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests

from tds_pipelines.erp.db import make_engine
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.server import start_simulator
from tds_pipelines.zoho import datacenters
from tds_pipelines.zoho.client import ZohoClient, _dedupe, parse_retry_after
from tds_pipelines.zoho.credentials import ZohoCredentials, scrub
from tds_pipelines.zoho.errors import (
    BudgetShareExceeded,
    ZohoAuthError,
    ZohoBadResponse,
    ZohoError,
    ZohoNotFound,
    ZohoPermissionError,
    ZohoQuotaExhausted,
    ZohoRefreshThrottled,
)
from tds_pipelines.zoho.rate_budget import RateBudget, reset_time
from tds_pipelines.zoho.token_cache import AccessToken

SECRET = "sim-secret"
REFRESH = "sim-refresh"
ORG = "10234695"
FAST = {"backoff_base": 0.02, "backoff_cap": 0.2}


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def sim_factory():
    started = []

    def start(**overrides):
        cfg = SimulatorConfig(records=5, **overrides)
        sim = start_simulator(cfg)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(sim_factory):
    return sim_factory(entity_records={"invoices": 450, "products": 150})


@pytest.fixture
def pg_engine(pg_server_url):
    schema = f"zc_{uuid.uuid4().hex[:10]}"
    upgrade(pg_server_url, schema)
    engine = make_engine(pg_server_url, schema)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def creds(sim, **overrides) -> ZohoCredentials:
    values = dict(
        client_id="sim-client",
        client_secret=SECRET,
        refresh_token=REFRESH,
        organization_id=ORG,
        accounts_url=sim.url,
        api_url=sim.url,
    )
    values.update(overrides)
    return ZohoCredentials(**values)


def stats(sim) -> dict:
    return requests.get(f"{sim.url}/admin/stats", timeout=5).json()


def admin(sim, path: str, body: dict | None = None) -> dict:
    resp = requests.post(f"{sim.url}/admin/{path}", json=body or {}, timeout=5)
    resp.raise_for_status()
    return resp.json()


def no_secret_in(text: str, *extra: str) -> None:
    for secret in (SECRET, REFRESH, *extra):
        assert secret not in text


# -- pure: data centers, credentials, scrubbing --------------------------------------------------------

DATA_CENTERS = [
    ("com", "https://accounts.zoho.com", "https://www.zohoapis.com"),
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    ("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
    ("com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    ("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    ("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    ("com.cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
]


@pytest.mark.parametrize(("name", "accounts", "api"), DATA_CENTERS)
def test_every_data_center_maps_to_its_hosts(name, accounts, api, monkeypatch):
    monkeypatch.delenv("ZOHO_ACCOUNTS_URL", raising=False)
    monkeypatch.delenv("ZOHO_API_URL", raising=False)
    assert datacenters.data_center(name).accounts_url == accounts
    assert datacenters.accounts_url(name) == accounts
    assert datacenters.api_url(name) == api
    c = ZohoCredentials("id", "s3cret-value", "r3fresh-value", ORG, data_center=name)
    assert c.token_url == f"{accounts}/oauth/v2/token"
    assert c.api_base() == api
    # The token answer's api_domain wins over the data center's host...
    assert c.api_base("https://www.zohoapis.com.au/") == "https://www.zohoapis.com.au"
    # ...and an explicit API host wins over both.
    assert ZohoCredentials("id", "s", "r", ORG, data_center=name, api_url="http://x:1").api_base(api) == "http://x:1"


def test_data_center_env_overrides_and_unknown_names(monkeypatch):
    monkeypatch.setenv("ZOHO_DATA_CENTER", "ca")
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", "http://127.0.0.1:9/")
    monkeypatch.delenv("ZOHO_API_URL", raising=False)
    assert datacenters.data_center().name == "ca"
    assert datacenters.accounts_url() == "http://127.0.0.1:9"
    assert datacenters.api_url(api_domain="https://www.zohoapis.ca") == "https://www.zohoapis.ca"
    monkeypatch.setenv("ZOHO_API_URL", "http://127.0.0.1:8")
    assert datacenters.api_url(api_domain="https://www.zohoapis.ca") == "http://127.0.0.1:8"
    with pytest.raises(ValueError, match="ZOHO_DATA_CENTER must be one of"):
        datacenters.data_center("xx")


def test_credentials_from_env_and_never_show_secrets(monkeypatch):
    for name in ("ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ZOHO_CLIENT_ID", "cid")
    monkeypatch.setenv("ZOHO_ORGANIZATION_ID", ORG)
    with pytest.raises(ValueError) as missing:
        ZohoCredentials.from_env()
    assert "ZOHO_CLIENT_SECRET" in str(missing.value) and "ZOHO_REFRESH_TOKEN" in str(missing.value)

    monkeypatch.setenv("ZOHO_CLIENT_SECRET", "top-secret-123")
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", "1000.refresh.abc")
    monkeypatch.setenv("ZOHO_DATA_CENTER", "ca")
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("ZOHO_API_URL", "http://127.0.0.1:2")
    c = ZohoCredentials.from_env()
    assert (c.data_center, c.accounts_url, c.api_url) == ("ca", "http://127.0.0.1:1", "http://127.0.0.1:2")
    for text in (
        repr(c),
        str(c),
        f"{c}",
        repr(AccessToken("1000.access.xyz", None, datetime.now(UTC), datetime.now(UTC))),
    ):
        no_secret_in(text, "top-secret-123", "1000.refresh.abc", "1000.access.xyz")
    assert len(c.cache_key) == 64 and "1000.refresh.abc" not in c.cache_key


def test_scrub_removes_known_secrets_and_secret_named_parameters():
    text = (
        "POST /oauth/v2/token?client_secret=abc123&refresh_token=1000.r.t body "
        '{"access_token": "1000.a.b"} Authorization: Zoho-oauthtoken 1000.a.b and sim-secret, code=57'
    )
    clean = scrub(text, ["sim-secret"])
    no_secret_in(clean, "abc123", "1000.r.t", "1000.a.b")
    assert "code=57" in clean


def test_errors_render_what_to_do_and_survive_pickling():
    err = ZohoNotFound("not found: Invoice does not exist.", code=1002, status=404, path="/invoices/9", record_id="9")
    assert "record 9" in str(err) and "Zoho code 1002" in str(err) and "/invoices/9" in str(err)
    share = BudgetShareExceeded("stock_sync", 100, 100, 1000, 0.1, 1000, 0)
    again = pickle.loads(pickle.dumps(share))
    assert (again.job, again.used, again.share, str(again)) == ("stock_sync", 100, 100, str(share))
    assert (again.used_total, again.reserved_for_others) == (1000, 0)
    quota = pickle.loads(pickle.dumps(ZohoQuotaExhausted("spent", code=45, reset_at=datetime(2030, 1, 1, tzinfo=UTC))))
    assert quota.reset_at.year == 2030 and "2030-01-01" in str(quota)


def test_reset_header_readings():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert reset_time("3600", now) == datetime(2030, 1, 1, 1, tzinfo=UTC)
    assert reset_time(str(int(datetime(2030, 1, 2, tzinfo=UTC).timestamp())), now) == datetime(2030, 1, 2, tzinfo=UTC)
    assert reset_time("", now) is None and reset_time(None, now) is None


def test_retry_after_readings():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120 and parse_retry_after(" 0 ", now) == 0
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:30 GMT", now) == 90
    assert parse_retry_after("Mon, 31 Dec 2029 23:00:00 GMT", now) == 0  # already past: go now
    for unreadable in (None, "", "soon", "-5", "1.5", "²"):
        assert parse_retry_after(unreadable, now) is None


def test_duplicates_are_dropped_only_when_identical_and_non_objects_pass_through():
    seen: set = set()
    first = {"invoice_id": "1", "total": 10}
    changed = {"invoice_id": "1", "total": 12}
    page = [first, "not a record", {"invoice_id": "1", "total": 10}, changed, None, {"total": 5}, [1], dict(changed)]
    kept, dropped = _dedupe(page, "invoice_id", seen)
    assert kept == [first, "not a record", changed, None, {"total": 5}, [1]] and dropped == 2
    # Across pages, and whatever the key order: a copy identical to any copy yielded earlier is dropped.
    kept, dropped = _dedupe([{"total": 10, "invoice_id": "1"}, {"total": 12, "invoice_id": "1"}, 7], "invoice_id", seen)
    assert kept == [7] and dropped == 2


# -- SQLite smoke ---------------------------------------------------------------------------------------


def test_sqlite_smoke_shared_token_listing_and_dedup(sim, sqlite_engine):
    admin(sim, "faults", {"kind": "duplicate", "count": 2, "path_contains": "/invoices"})
    first = ZohoClient(creds(sim), sqlite_engine, job="full_sync", **FAST)
    pages = list(first.list_pages("books", "/invoices", "invoices", id_field="invoice_id"))
    ids = [r["invoice_id"] for p in pages for r in p.records]
    assert [p.number for p in pages] == [1, 2, 3] and [p.has_more for p in pages] == [True, True, False]
    assert len(ids) == len(set(ids)) == 450
    assert first.duplicates == 2 == sum(p.duplicates for p in pages)

    second = ZohoClient(creds(sim), sqlite_engine, job="incremental_sync", **FAST)
    assert second.count("books", "/invoices", "invoices") == 450
    assert stats(sim)["token_refreshes"] == 1
    assert (first.refreshes, second.refreshes) == (1, 0)
    assert first.budget.calls_today() == 4


# -- PostgreSQL matrix ----------------------------------------------------------------------------------

pytestmark_pg = pytest.mark.postgres


@pytestmark_pg
def test_two_clients_share_one_refreshed_token(sim, pg_engine):
    a = ZohoClient(creds(sim), pg_engine, **FAST)
    b = ZohoClient(creds(sim), pg_engine, **FAST)
    a.get_json("books", "/users")
    b.get_json("inventory", "/settings/warehouses")
    assert stats(sim)["token_refreshes"] == 1
    assert a.refreshes + b.refreshes == 1 and a.calls == b.calls == 1


def refresh_from_threads(sim, engine, threads: int) -> list:
    """`threads` clients call at once through one database; returns them (the caller checks refreshes)."""
    clients = [ZohoClient(creds(sim), engine, **FAST) for _ in range(threads)]
    barrier = threading.Barrier(len(clients))
    errors = []

    def work(client):
        try:
            barrier.wait(timeout=10)
            client.get_json("books", "/users")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=30)
    assert not errors
    return clients


@pytestmark_pg
def test_concurrent_threads_cause_one_refresh(sim, pg_engine):
    refresh_from_threads(sim, pg_engine, 6)
    assert stats(sim)["token_refreshes"] == 1


@pytestmark_pg
def test_token_expiry_mid_listing_refreshes_once_and_completes(sim, pg_engine):
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    seen = []
    for page in client.list_pages("books", "/invoices", "invoices", id_field="invoice_id"):
        seen.extend(r["invoice_id"] for r in page.records)
        if page.number == 1:
            admin(sim, "expire-tokens")
    assert len(set(seen)) == 450
    s = stats(sim)
    assert s["token_refreshes"] == 2 and s["rejected"]["57"] == 1
    assert client.refreshes == 2 and client.calls == 4


@pytestmark_pg
def test_api_domain_from_the_token_answer_is_used(sim, pg_engine):
    # No API host configured, data center "ca": the simulator's api_domain must be preferred over zohoapis.ca.
    client = ZohoClient(creds(sim, api_url=None, data_center="ca"), pg_engine, **FAST)
    assert client.get_json("books", "/users")["code"] == 0


@pytestmark_pg
def test_organization_id_is_sent_and_timestamps_are_encoded(sim, pg_engine):
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    sent = []
    client.session.hooks["response"].append(lambda resp, *a, **k: sent.append(resp.request.url))
    client.get_json("books", "/invoices", {"last_modified_time": "2013-11-18T02:02:51+0300", "per_page": 1})
    token_url, api_call = sent
    no_secret_in(token_url)  # secrets travel as form fields, never in the URL
    assert f"organization_id={ORG}" in api_call
    assert "last_modified_time=2013-11-18T02%3A02%3A51%2B0300" in api_call
    wrong = ZohoClient(creds(sim, organization_id="999"), pg_engine, **FAST)
    with pytest.raises(ZohoError, match="ZOHO_ORGANIZATION_ID") as info:
        wrong.get_json("books", "/users")
    assert info.value.code == 6041


@pytestmark_pg
def test_invalid_refresh_token_is_an_auth_error_without_secrets(sim, pg_engine):
    client = ZohoClient(creds(sim, refresh_token="1000.wrong-refresh-xyz"), pg_engine, **FAST)
    with pytest.raises(ZohoAuthError) as info:
        client.get_json("books", "/users")
    text = f"{info.value} {info.value!r} {info.value.__dict__}"
    assert "invalid_code" in text and "ZOHO_REFRESH_TOKEN" in text
    no_secret_in(text, "1000.wrong-refresh-xyz")
    bad_secret = ZohoClient(creds(sim, client_secret="wrong-secret-123"), pg_engine, **FAST)
    with pytest.raises(ZohoAuthError, match="invalid_client_secret") as info:
        bad_secret.get_json("books", "/users")
    no_secret_in(str(info.value), "wrong-secret-123")
    assert stats(sim)["api_calls"] == 0


@pytestmark_pg
def test_a_wrong_client_secret_is_refused_at_once_despite_a_cached_token(sim, pg_engine):
    good = ZohoClient(creds(sim), pg_engine, **FAST)
    good.get_json("books", "/users")
    assert creds(sim).cache_key != creds(sim, client_secret="wrong-secret-123").cache_key
    wrong = ZohoClient(creds(sim, client_secret="wrong-secret-123"), pg_engine, **FAST)
    with pytest.raises(ZohoAuthError, match="invalid_client_secret") as info:
        wrong.get_json("books", "/users")
    no_secret_in(f"{info.value} {info.value.__dict__}", "wrong-secret-123")
    assert wrong.calls == 0 and stats(sim)["api_calls"] == 1  # the cached token was not used
    good.get_json("books", "/users")  # the good credentials keep their token
    assert stats(sim)["token_refreshes"] == 1


@pytestmark_pg
def test_access_denied_blocks_refreshes_for_every_process(sim_factory, pg_engine):
    sim = sim_factory(refresh_limit=1)
    first = ZohoClient(creds(sim), pg_engine, **FAST)
    first.get_json("books", "/users")
    admin(sim, "expire-tokens")
    with pytest.raises(ZohoRefreshThrottled) as info:
        first.get_json("books", "/users")  # 57 -> refresh -> Access Denied
    assert info.value.blocked_until > datetime.now(UTC)
    no_secret_in(str(info.value))
    assert stats(sim)["token_errors"] == {"Access Denied": 1}

    second = ZohoClient(creds(sim), pg_engine, **FAST)
    with pytest.raises(ZohoRefreshThrottled):
        second.get_json("books", "/users")
    s = stats(sim)
    assert s["token_errors"] == {"Access Denied": 1} and s["token_refreshes"] == 1  # nobody asked again


@pytestmark_pg
def test_second_57_after_a_refresh_is_a_permission_error(sim_factory, pg_engine):
    sim = sim_factory(token_lifetime_seconds=0)  # every token is refused: what a missing scope looks like
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    with pytest.raises(ZohoPermissionError, match="missing scope") as info:
        client.get_json("books", "/invoices")
    assert info.value.code == 57 and info.value.path == "/invoices"
    assert stats(sim)["rejected"]["57"] == 2 and client.refreshes == 2


@pytestmark_pg
@pytest.mark.parametrize("kind", ["500", "503", "malformed", "timeout"])
def test_transient_faults_are_retried(sim, pg_engine, kind):
    admin(sim, "faults", {"kind": kind, "count": 2, "path_contains": "/users", "delay_seconds": 1.5})
    client = ZohoClient(creds(sim), pg_engine, timeout=0.5, max_retries=3, **FAST)
    body = client.get_json("books", "/users")
    assert body["code"] == 0 and isinstance(body["users"], list)
    assert client.retries == 2 and client.calls == 3
    assert stats(sim)["faults_injected"] == {kind: 2}


@pytestmark_pg
def test_malformed_answers_past_the_retries_raise_bad_response(sim, pg_engine):
    admin(sim, "faults", {"kind": "malformed", "count": 5, "path_contains": "/users"})
    client = ZohoClient(creds(sim), pg_engine, max_retries=2, **FAST)
    with pytest.raises(ZohoBadResponse, match="gave up after 3 attempts"):
        client.get_json("books", "/users")
    assert client.calls == 3


@pytestmark_pg
def test_five_503s_in_a_row_are_outlasted(sim, pg_engine):
    admin(sim, "faults", {"kind": "503", "count": 5, "path_contains": "/users"})
    client = ZohoClient(creds(sim), pg_engine, backoff_base=0.02)  # default retry_for, max_retries and cap
    assert client.get_json("books", "/users")["code"] == 0
    assert client.retries == 5 and client.calls == 6


@pytestmark_pg
def test_a_failure_outlasting_retry_for_gives_up_with_a_clear_error(sim, pg_engine):
    admin(sim, "faults", {"kind": "503", "count": 1000, "path_contains": "/users"})
    client = ZohoClient(creds(sim), pg_engine, retry_for=0.5, **FAST)
    started = time.monotonic()
    with pytest.raises(ZohoError, match=r"HTTP 503.*gave up after \d+ attempts in 0\.\d s") as info:
        client.get_json("books", "/users")
    assert 0.5 <= time.monotonic() - started < 2
    assert info.value.status == 503 and client.calls >= 3


@pytestmark_pg
def test_retry_after_is_honoured_within_retry_for(sim, pg_engine):
    admin(sim, "faults", {"kind": "503", "count": 1, "path_contains": "/users", "retry_after": 1})
    patient = ZohoClient(creds(sim), pg_engine, **FAST)  # backoff alone would wait at most 0.02 s
    started = time.monotonic()
    assert patient.get_json("books", "/users")["code"] == 0
    assert 1 <= time.monotonic() - started < 2 and patient.retries == 1

    admin(sim, "faults", {"kind": "503", "count": 1, "path_contains": "/users", "retry_after": 30})
    hurried = ZohoClient(creds(sim), pg_engine, retry_for=0.3, **FAST)
    started = time.monotonic()
    assert hurried.get_json("books", "/users")["code"] == 0  # waited what was left of retry_for, not 30 s
    assert 0.3 <= time.monotonic() - started < 1.3 and hurried.retries == 1


@pytestmark_pg
def test_code_1070_is_retried(sim_factory, pg_engine):
    sim = sim_factory(concurrency_limit=1)
    admin(
        sim,
        "faults",
        {"kind": "timeout", "count": 1, "path_contains": "/settings/warehouses", "delay_seconds": 1},
    )
    token = sim.access_token()
    holder = threading.Thread(
        target=requests.get,
        args=(f"{sim.url}/inventory/v1/settings/warehouses",),
        kwargs={
            "params": {"organization_id": ORG},
            "headers": {"Authorization": f"Zoho-oauthtoken {token}"},
            "timeout": 10,
        },
    )
    holder.start()
    deadline = time.monotonic() + 5
    while stats(sim)["in_flight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    client = ZohoClient(creds(sim), pg_engine, max_retries=8, backoff_base=0.1, backoff_cap=0.5)
    assert client.get_json("books", "/users")["code"] == 0
    holder.join(timeout=10)
    assert stats(sim)["rejected"]["1070"] >= 1 and client.retries >= 1


@pytestmark_pg
def test_listing_yields_a_changed_copy_again_and_drops_an_identical_one(sim, pg_engine):
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    pages = client.list_pages("books", "/invoices", "invoices", id_field="invoice_id")
    first = next(pages)
    last = first.records[-1]
    requests.patch(f"{sim.url}/admin/invoices/{last['invoice_id']}", json={"reference_number": "X"}, timeout=5)
    admin(sim, "faults", {"kind": "duplicate", "count": 2, "path_contains": "/invoices"})
    second, third = pages
    assert second.records[0]["invoice_id"] == last["invoice_id"] and second.records[0] != last
    assert second.records[0]["reference_number"] == "X"
    assert (len(second.records), second.duplicates) == (201, 0)  # the changed copy is yielded again
    assert (len(third.records), third.duplicates) == (50, 1)  # page 2's last record, unchanged: dropped
    assert client.duplicates == 1


@pytestmark_pg
def test_not_found_names_the_record(sim, pg_engine):
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    with pytest.raises(ZohoNotFound) as info:
        client.get_record("books", "/invoices/982000000000001", "invoice")
    assert info.value.code == 1002 and info.value.record_id == "982000000000001"
    assert "982000000000001" in str(info.value)


@pytestmark_pg
def test_get_record_item_details_and_count(sim, pg_engine):
    client = ZohoClient(creds(sim), pg_engine, **FAST)
    ids = requests.get(f"{sim.url}/admin/products", timeout=5).json()["ids"]
    assert len(ids) == 150
    items = list(client.item_details(ids + ids[:3]))  # repeated ids are asked once
    assert sorted(i["item_id"] for i in items) == sorted(ids)
    assert client.calls == 2  # 100 + 50 ids
    one = client.get_record("inventory", f"/items/{ids[0]}", "item")
    assert one["item_id"] == ids[0]
    assert client.count("books", "/invoices", "invoices") == 450
    assert client.calls == 4


@pytestmark_pg
def test_daily_quota_stops_every_client_until_reset(sim_factory, pg_engine):
    sim = sim_factory(daily_limit=3)
    client = ZohoClient(creds(sim), pg_engine, shares={}, **FAST)
    for _ in range(3):
        client.get_json("books", "/users")
    with pytest.raises(ZohoQuotaExhausted) as info:
        client.get_json("books", "/users")
    assert info.value.code == 45 and info.value.reset_at > datetime.now(UTC)
    calls = stats(sim)["calls_by_path"]

    other = ZohoClient(creds(sim), pg_engine, job="full_sync", shares={}, **FAST)
    with pytest.raises(ZohoQuotaExhausted):
        other.get_json("inventory", "/items")
    assert stats(sim)["calls_by_path"] == calls and other.calls == 0
    assert stats(sim)["rejected"]["45"] == 1


@pytestmark_pg
def test_job_over_its_daily_share_skips_before_spending(sim, pg_engine):
    shares = {"stock_sync": 0.2, "full_sync": 0.8}
    stock = ZohoClient(creds(sim), pg_engine, job="stock_sync", daily_limit=10, shares=shares, **FAST)
    stock.get_json("books", "/users")
    stock.get_json("books", "/users")
    with pytest.raises(BudgetShareExceeded) as info:
        stock.get_json("books", "/users")
    err = info.value
    assert (err.job, err.used, err.share, err.daily_limit) == ("stock_sync", 2, 2, 10)
    # full_sync has not spent its floor of 8: nothing is left to borrow.
    assert (err.used_total, err.reserved_for_others) == (2, 8)
    assert "stock_sync" in str(err) and "2 of its 2" in str(err)
    assert stock.calls == 2 and stats(sim)["api_calls"] == 2
    # Another job still has its own share.
    full = ZohoClient(creds(sim), pg_engine, job="full_sync", daily_limit=10, shares=shares, **FAST)
    full.get_json("books", "/users")
    assert full.budget.share_status().used == 1


def floor_budget(engine, job: str, **kwargs) -> RateBudget:
    """A budget on the database only, with floors a=2 and b=3 of a daily limit of 10 unless overridden."""
    kwargs = {"per_minute": 1000, "daily_limit": 10, "shares": {"a": 0.2, "b": 0.3}, **kwargs}
    return RateBudget(engine, "org-floors", job=job, **kwargs)


def spend(budget: RateBudget, calls: int) -> None:
    for _ in range(calls):
        budget.acquire()


@pytestmark_pg
def test_a_job_past_its_floor_borrows_while_the_others_are_idle(pg_engine):
    a = floor_budget(pg_engine, "a")
    assert a.share_status().available == 7  # its floor of 2, then 5 nobody reserved (b keeps its 3)
    spend(a, 7)
    with pytest.raises(BudgetShareExceeded) as info:
        a.acquire()
    err = info.value
    assert (err.used, err.share, err.used_total, err.reserved_for_others) == (7, 2, 7, 3)
    assert "7 of its 2" in str(err) and "made 7 calls" in str(err) and "hold 3" in str(err)
    status = a.share_status()
    assert (status.used, status.remaining, status.available) == (7, 0, 0)
    assert a.calls_today() == 7


@pytestmark_pg
def test_borrowing_never_eats_another_jobs_unspent_floor(pg_engine):
    a, b = floor_budget(pg_engine, "a"), floor_budget(pg_engine, "b")
    spend(b, 1)
    assert a.share_status().available == 7  # 10 - 1 used - 2 still reserved for b
    spend(a, 7)
    with pytest.raises(BudgetShareExceeded):
        a.acquire()
    assert b.share_status().available == 2
    spend(b, 2)  # b's floor was kept for it
    with pytest.raises(BudgetShareExceeded):
        b.acquire()
    assert b.calls_today() == 10


@pytestmark_pg
def test_other_apps_calls_shrink_what_can_be_borrowed(pg_engine):
    a = floor_budget(pg_engine, "a", daily_limit=None, shares={"a": 0.1, "b": 0.25})
    assert a.share_status() is None  # no daily limit known yet
    # Zoho says 12 of 20 calls are left today while TDS made none: other apps made 8.
    a.record_headers({"X-Rate-Limit-Limit": "20", "X-Rate-Limit-Remaining": "12", "X-Rate-Limit-Reset": "3600"})
    status = a.share_status()
    assert (status.share, status.used_total, status.reserved_for_others, status.available) == (2, 8, 5, 7)
    spend(a, 7)  # counted on top of Zoho's last report, which does not know them yet
    with pytest.raises(BudgetShareExceeded) as info:
        a.acquire()
    assert (info.value.used, info.value.used_total) == (7, 15)
    # The floor stays reserved whatever the other apps spend.
    a.record_headers({"X-Rate-Limit-Limit": "20", "X-Rate-Limit-Remaining": "1"})
    assert floor_budget(pg_engine, "b", daily_limit=None, shares={"a": 0.1, "b": 0.25}).share_status().available == 5


@pytestmark_pg
def test_rate_budget_waits_for_the_oldest_call_to_leave_the_window(pg_engine):
    # Pure database behaviour, no HTTP: a full window answers how long until a slot frees.
    budget = RateBudget(pg_engine, "org-w", per_minute=3, shares={})
    for _ in range(3):
        assert budget._try_acquire() is None
    wait = budget._try_acquire()
    assert 60.0 < wait <= 60.5 + 1
    budget.block_per_minute(seconds=5)
    assert 0 < RateBudget(pg_engine, "org-w", per_minute=100, shares={})._try_acquire() <= 5


def _budget_worker(url: str, schema: str, sim_url: str, calls: int, per_minute: int, out) -> None:
    engine = make_engine(url, schema)
    c = ZohoCredentials("sim-client", SECRET, REFRESH, ORG, accounts_url=sim_url, api_url=sim_url)
    client = ZohoClient(c, engine, job="full_sync", per_minute=per_minute, shares={}, **FAST)
    started = time.monotonic()
    errors = []
    for _ in range(calls):
        try:
            client.get_json("books", "/users")
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            errors.append(repr(exc))
    out.put({"calls": client.calls, "errors": errors, "seconds": time.monotonic() - started})


@pytestmark_pg
@pytest.mark.timeout(150)
def test_three_processes_share_the_per_minute_budget_without_a_44(sim_factory, pg_server_url):
    limit, per_process = 12, 6  # 18 calls: a full minute, then the rest once the oldest calls leave it
    sim = sim_factory(rate_limit_per_minute=limit)
    schema = f"zc_{uuid.uuid4().hex[:10]}"
    upgrade(pg_server_url, schema)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_budget_worker, args=(pg_server_url, schema, sim.url, per_process, limit, out))
        for _ in range(3)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [out.get(timeout=130) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    elapsed = time.monotonic() - started
    assert all(not r["errors"] for r in results), results
    s = stats(sim)
    assert s["rejected"]["44"] == 0
    assert s["api_calls"] == 3 * per_process and s["token_refreshes"] == 1
    assert s["peak_per_minute_window"] >= 0.9 * limit  # the budget was used, not just respected
    assert 60 < elapsed < 90


def test_sqlite_concurrent_clients_refresh_once(sim, sqlite_engine):
    clients = refresh_from_threads(sim, sqlite_engine, 4)
    assert stats(sim)["token_refreshes"] == 1
    assert clients[0].budget.calls_today() == 4


def test_client_from_env_reads_the_budget_knobs(sim, sqlite_engine, monkeypatch):
    monkeypatch.setenv("ZOHO_CLIENT_ID", "sim-client")
    monkeypatch.setenv("ZOHO_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("ZOHO_REFRESH_TOKEN", REFRESH)
    monkeypatch.setenv("ZOHO_ORGANIZATION_ID", ORG)
    monkeypatch.setenv("ZOHO_ACCOUNTS_URL", sim.url)
    monkeypatch.setenv("ZOHO_API_URL", sim.url)
    monkeypatch.setenv("TDS_ZOHO_CALLS_PER_MINUTE", "40")
    monkeypatch.setenv("TDS_ZOHO_DAILY_LIMIT", "500")
    monkeypatch.setenv("TDS_ZOHO_API_SHARES", '{"stock_sync": 0.5, "other": 0.5}')
    with ZohoClient.from_env(sqlite_engine, job="stock_sync") as client:
        assert (client.budget.per_minute, client.budget.daily_limit) == (40, 500)
        assert client.get_json("books", "/users")["code"] == 0
        assert client.budget.share_status().share == 250
        assert client.usage()["api_calls"] == 1
