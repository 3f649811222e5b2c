"""The webhook receiver over real HTTP: uvicorn serving `create_app` on a free port, a fresh PostgreSQL schema,
every assertion read through the separate observer engine (so only committed rows count)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
import uvicorn
from sqlalchemy import create_engine, select, text

from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.tables import sync_queue
from tds_pipelines.simulator.webhooks import signature
from tds_pipelines.webhooks import create_app
from tds_pipelines.webhooks.intake import delivery_row
from tds_pipelines.webhooks.store import PostgresQueue, QueueUnavailable, Stored
from tds_pipelines.zoho.webhooks import Delivery
from tds_pipelines_tests.simulator_fixtures import running_simulator
from tds_pipelines_tests.sync_fixtures import free_port, fresh_erp

pytestmark = pytest.mark.postgres

TOKEN = "t0ken-for-tests"
SECRET = "s3cr3tForTests42"
EXAMPLES = Path(__file__).parent / "fixtures" / "zoho_examples" / "get"
INVOICE = {**json.loads((EXAMPLES / "invoices.json").read_text())["invoice"], "invoice_id": "982000000567114"}
CONTACT = {**json.loads((EXAMPLES / "contacts.json").read_text())["contact"], "contact_id": "460000000026049"}
TIMEOUT = 30
NO_ITEMS = dict.fromkeys(("PENDING", "PROCESSING", "COMPLETED", "FAILED", "DEAD_LETTER"), 0)


@contextmanager
def running_receiver(root_path: str = "", **options) -> Iterator[str]:
    """`create_app(**options)` served by uvicorn on a free port in a background thread; yields its URL.
    `root_path`: the receiver sits behind a proxy that strips this prefix."""
    port = free_port()
    app = create_app(**options)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", root_path=root_path)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=TIMEOUT)


@pytest.fixture
def store(pg_server_url):
    erp = fresh_erp(pg_server_url)
    yield erp
    erp.observer.dispose()


@pytest.fixture
def receiver(pg_server_url, store) -> Iterator[str]:
    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        yield url


def post(url: str, body: bytes | str, params: dict | None = None, token: str | None = TOKEN, **headers):
    headers = {"Content-Type": "application/json", "User-Agent": "Zoho-Webhook", **headers}
    if token is not None:
        headers["X-TDS-Token"] = token
    return requests.post(f"{url}/webhooks/zoho", data=body, params=params, headers=headers, timeout=TIMEOUT)


def queue_rows(observer) -> list[dict]:
    with observer.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(sync_queue).order_by(sync_queue.c.id))]


def body_of(document: object) -> bytes:
    return json.dumps(document).encode()


# ---- usable deliveries ------------------------------------------------------------------------------------


def test_a_json_delivery_is_queued_pending_and_committed_before_the_answer(receiver, store):
    answer = post(receiver, body_of({"invoice": INVOICE}))

    assert answer.status_code == 200
    assert answer.json() == {"id": answer.json()["id"], "duplicate": False}
    (row,) = queue_rows(store.observer)
    assert row["id"] == answer.json()["id"]
    assert (row["status"], row["entity"], row["zoho_id"], row["event"]) == (
        "PENDING",
        "invoices",
        "982000000567114",
        "webhook",
    )
    assert row["payload"] == INVOICE
    assert row["headers"] == {"content-type": "application/json", "user-agent": "Zoho-Webhook"}
    assert row["body_hash"] == Delivery("invoices", "982000000567114", INVOICE).key
    assert row["attempts"] == 0 and row["last_error"] is None
    assert row["received_at"] is not None and row["next_attempt_at"] == row["received_at"]


def test_a_form_delivery_carries_the_record_in_json_string(receiver, store):
    answer = post(
        receiver,
        {"JSONString": json.dumps({"invoice": INVOICE})},
        **{"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert answer.status_code == 200, answer.text
    (row,) = queue_rows(store.observer)
    assert (row["status"], row["entity"], row["zoho_id"]) == ("PENDING", "invoices", "982000000567114")
    assert row["payload"] == INVOICE


@pytest.mark.parametrize(("contact_type", "entity"), [("customer", "customers"), ("vendor", "vendors")])
def test_a_contact_is_a_customer_or_a_vendor_by_its_contact_type(receiver, store, contact_type, entity):
    answer = post(receiver, body_of({"contact": {**CONTACT, "contact_type": contact_type}}))

    assert answer.status_code == 200
    (row,) = queue_rows(store.observer)
    assert (row["entity"], row["zoho_id"]) == (entity, "460000000026049")


def test_a_deletion_is_queued_as_webhook_deleted(receiver, store):
    answer = post(receiver, body_of({"invoice": INVOICE}), params={"event": "deleted"})

    assert answer.status_code == 200
    (row,) = queue_rows(store.observer)
    assert (row["event"], row["status"], row["zoho_id"]) == ("webhook_deleted", "PENDING", "982000000567114")


def test_a_bare_record_is_read_with_the_entity_named_in_the_url(receiver, store):
    answer = post(receiver, body_of(INVOICE), params={"entity": "invoices"})

    assert answer.status_code == 200
    assert queue_rows(store.observer)[0]["payload"] == INVOICE


def test_a_redelivery_of_the_same_version_is_acknowledged_with_the_first_id_and_stored_once(receiver, store):
    first = post(receiver, body_of({"invoice": INVOICE}))
    # Same record, other formatting: still the same version.
    again = post(receiver, json.dumps({"invoice": INVOICE}, indent=2))
    changed = post(receiver, body_of({"invoice": {**INVOICE, "status": "sent"}}))

    assert first.json()["duplicate"] is False
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert changed.json()["duplicate"] is False and changed.json()["id"] != first.json()["id"]
    assert len(queue_rows(store.observer)) == 2


def test_concurrent_identical_deliveries_get_one_row_and_the_same_id(receiver, store):
    body = body_of({"invoice": INVOICE})
    with ThreadPoolExecutor(8) as pool:
        answers = [answer.json() for answer in pool.map(lambda _: post(receiver, body), range(16))]

    assert len({answer["id"] for answer in answers}) == 1
    assert sorted(answer["duplicate"] for answer in answers) == [False] + [True] * 15
    assert len(queue_rows(store.observer)) == 1


def test_what_jsonb_refuses_verbatim_is_stored_cleaned(receiver, store):
    body = b'{"invoice": {"invoice_id": "7", "notes": "a\\u0000b \\ud800", "total": NaN}}'

    answer = post(receiver, body)

    assert answer.status_code == 200, answer.text
    assert queue_rows(store.observer)[0]["payload"] == {"invoice_id": "7", "notes": "ab \ufffd", "total": "NaN"}


def test_a_burst_is_written_in_batches_each_delivery_answered_with_its_own_row(pg_server_url, store):
    """Deliveries queued together share statements: twins get the first's row, a row stored before is a
    duplicate, a body jsonb refuses verbatim is stored cleaned, the others each get their own row."""
    deliveries = [body_of({"invoice": {**INVOICE, "invoice_id": f"98{n:013d}"}}) for n in range(150)]
    twin = deliveries[7]
    refused = b'{"invoice": {"invoice_id": "7", "notes": "a\\u0000b"}}'
    queue = PostgresQueue(pg_server_url, store.schema)
    headers = {"content-type": "application/json"}

    async def burst() -> list:
        before = await queue.store(delivery_row(deliveries[0], headers, None, None))
        bodies = [*deliveries, twin, refused, twin]
        rows = [delivery_row(body, headers, None, None) for body in bodies]
        answers = await asyncio.gather(*(queue.store(row) for row in rows))
        await queue.close()
        return [before, *answers]

    before, *answers = asyncio.run(burst())

    stored = {row["id"]: row for row in queue_rows(store.observer)}
    assert len(stored) == 151  # 150 invoices and the cleaned one; no twin, no second copy
    assert answers[0] == Stored(before.id, True)
    fresh = answers[1:150]
    assert all(not answer.duplicate for answer in fresh) and len({answer.id for answer in fresh}) == 149
    for body, answer in zip(deliveries[1:], fresh, strict=True):
        assert stored[answer.id]["payload"] == json.loads(body)["invoice"]
    assert answers[150] == answers[152] == Stored(answers[7].id, True)
    assert stored[answers[151].id]["payload"] == {"invoice_id": "7", "notes": "ab"}
    with store.observer.connect() as conn:  # rows written by one statement share its transaction id
        transactions = conn.execute(text("SELECT count(DISTINCT xmin::text) FROM tds_sync_queue")).scalar_one()
    assert transactions <= 50  # one per delivery (152) without batching; a handful with it


def test_a_burst_while_the_database_is_down_answers_every_delivery_unavailable():
    queue = PostgresQueue(f"postgresql://tds@127.0.0.1:{free_port()}/erp", "tds")
    rows = [delivery_row(body_of({"invoice": {**INVOICE, "invoice_id": str(n)}}), {}, None, None) for n in range(20)]

    async def burst() -> list:
        answers = await asyncio.gather(*(queue.store(row) for row in rows), return_exceptions=True)
        await queue.close()
        return answers

    assert all(isinstance(answer, QueueUnavailable) for answer in asyncio.run(burst()))


# ---- refused: nothing stored ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "params", "says"),
    [
        (None, None, "no token"),
        ("not-the-token", None, "wrong token"),
        (None, {"token": "not-the-token"}, "wrong token"),
    ],
)
def test_a_missing_or_wrong_token_is_refused_and_nothing_is_stored(receiver, store, token, params, says):
    answer = post(receiver, body_of({"invoice": INVOICE}), params=params, token=token)

    assert answer.status_code == 401
    assert says in answer.json()["detail"]
    assert queue_rows(store.observer) == []


def test_the_token_may_come_in_the_query(receiver, store):
    answer = post(receiver, body_of({"invoice": INVOICE}), params={"token": TOKEN}, token=None)

    assert answer.status_code == 200
    assert len(queue_rows(store.observer)) == 1


def test_without_a_configured_token_every_delivery_is_refused(pg_server_url, store, monkeypatch):
    monkeypatch.delenv("TDS_WEBHOOK_TOKEN", raising=False)
    with running_receiver(database_url=pg_server_url, schema=store.schema) as url:
        answer = post(url, body_of({"invoice": INVOICE}), token="anything")

    assert answer.status_code == 401
    assert "TDS_WEBHOOK_TOKEN is unset" in answer.json()["detail"]
    assert queue_rows(store.observer) == []


def test_with_a_secret_the_signature_over_query_and_body_must_match(pg_server_url, store):
    body = body_of({"invoice": INVOICE})
    params = {"token": TOKEN, "source": "zoho"}  # signed as the URL is configured, the token included
    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN, secret=SECRET) as url:
        unsigned = post(url, body, params=params, token=None)
        wrong = post(url, body, params=params, token=None, **{"X-Zoho-Webhook-Signature": "0" * 64})
        other_body = post(
            url, body, params=params, token=None, **{"X-Zoho-Webhook-Signature": signature(SECRET, params, b"{}")}
        )
        assert queue_rows(store.observer) == []
        signed = post(
            url, body, params=params, token=None, **{"X-Zoho-Webhook-Signature": signature(SECRET, params, body)}
        )
        form = {"JSONString": json.dumps({"invoice": {**INVOICE, "status": "sent"}})}
        encoded = urlencode(form).encode()
        form_signature = signature(SECRET, {**params, **form}, encoded)
        signed_form = post(
            url,
            encoded,
            params=params,
            token=None,
            **{"Content-Type": "application/x-www-form-urlencoded", "X-Zoho-Webhook-Signature": form_signature},
        )

    assert [unsigned.status_code, wrong.status_code, other_body.status_code] == [401, 401, 401]
    assert "X-Zoho-Webhook-Signature" in wrong.json()["detail"]
    assert (signed.status_code, signed_form.status_code) == (200, 200), signed_form.text
    assert len(queue_rows(store.observer)) == 2


# ---- unusable: 400, kept once as a dead letter ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "params", "says", "kept"),
    [
        (b"this is not JSON", None, "not JSON", "this is not JSON"),
        (b'{"widget": {"widget_id": "1"}}', None, "no known record key", {"widget": {"widget_id": "1"}}),
        (b'{"invoice": {"invoice_number": "INV-1"}}', None, "no invoice_id", {"invoice": {"invoice_number": "INV-1"}}),
        (b'{"invoice_id": "1"}', {"entity": "gadgets"}, "unknown entity 'gadgets'", {"invoice_id": "1"}),
        (b"\xff\xfe not UTF-8", None, "not UTF-8", "\ufffd\ufffd not UTF-8"),
    ],
)
def test_an_unusable_body_is_refused_and_kept_once_as_a_dead_letter(receiver, store, body, params, says, kept):
    first = post(receiver, body, params=params)
    retried = post(receiver, body, params=params)

    assert first.status_code == retried.status_code == 400
    assert says in first.json()["detail"]
    assert first.json()["id"] == retried.json()["id"]
    (row,) = queue_rows(store.observer)
    assert (row["status"], row["event"], row["entity"]) == ("DEAD_LETTER", "webhook_unusable", None)
    assert says in row["last_error"]
    assert row["payload"] == {"body": kept}
    assert row["body_hash"] == hashlib.sha256(body).hexdigest()


# ---- too large: 413, a stub without secrets ---------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused_and_kept_once_as_a_stub_without_secrets(pg_server_url, store, chunked):
    big = body_of({"invoice": {"filler": "x" * 20_000, **INVOICE}})
    other = body_of({"invoice": {"filler": "y" * 20_000, **INVOICE}})  # another start: another stub

    def sent(body: bytes):  # chunked: no Content-Length, as a streaming client sends it
        return iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body

    secrets = {"Authorization": "Bearer b34r3r", "X-Zoho-Webhook-Signature": "5ig"}
    with running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN, max_bytes=8192) as url:
        answers = [
            post(url, sent(big), **secrets),
            post(url, sent(big), **secrets),  # Zoho's retry
            post(url, sent(other), params={"token": TOKEN}, token=None),
        ]

    assert [answer.status_code for answer in answers] == [413, 413, 413]
    assert "over the 8192-byte limit" in answers[0].json()["detail"]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    rows = queue_rows(store.observer)
    assert len(rows) == 2
    stub = rows[0]
    assert (stub["status"], stub["event"]) == ("DEAD_LETTER", "webhook_too_large")
    assert stub["payload"]["size"] > 8192 if chunked else stub["payload"]["size"] == len(big)
    assert stub["payload"]["first_kilobyte"] == big[:1024].decode()
    assert stub["payload"]["headers"]["content-type"] == "application/json"
    for row in rows:
        assert not {"x-tds-token", "authorization", "x-zoho-webhook-signature"} & set(row["payload"]["headers"])
        stored = json.dumps(row, default=str)
        assert TOKEN not in stored and "b34r3r" not in stored and "5ig" not in stored


# ---- database unavailable: 503 ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["closed port", "no such database"])
def test_an_unreachable_database_answers_503_without_the_password(where, caplog):
    url = {
        "closed port": f"postgresql://tds:hunter2pw@127.0.0.1:{free_port()}/erp",
        "no such database": "postgresql://postgres:hunter2pw@127.0.0.1:5432/tds_no_such_database",
    }[where]
    with running_receiver(database_url=url, schema="tds", token=TOKEN) as receiver:
        delivery = post(receiver, body_of({"invoice": INVOICE}))
        health = requests.get(f"{receiver}/health", timeout=TIMEOUT)

    assert (delivery.status_code, health.status_code) == (503, 503)
    assert "unavailable" in delivery.json()["detail"]
    for said in (delivery.text, health.text, caplog.text):
        assert "hunter2pw" not in said and "Traceback" not in said


# ---- health and the OpenAPI document ----------------------------------------------------------------------


def test_health_counts_the_queue_by_status(receiver, store):
    assert requests.get(f"{receiver}/health", timeout=TIMEOUT).json()["queue"] == NO_ITEMS
    post(receiver, body_of({"invoice": INVOICE}))
    post(receiver, body_of({"invoice": {**INVOICE, "invoice_id": "2"}}))
    post(receiver, b"not JSON")

    health = requests.get(f"{receiver}/health", timeout=TIMEOUT)

    assert health.status_code == 200
    figures = health.json()
    assert figures["queue"] == {**NO_ITEMS, "PENDING": 2, "DEAD_LETTER": 1}
    assert figures["dead_letters"] == 1
    assert 0 <= figures["oldest_pending_age_seconds"] < TIMEOUT


def test_the_openapi_document_lists_both_routes(receiver):
    paths = requests.get(f"{receiver}/openapi.json", timeout=TIMEOUT).json()["paths"]

    assert "post" in paths["/webhooks/zoho"] and "get" in paths["/health"]
    assert set(paths["/webhooks/zoho"]["post"]["responses"]) >= {"200", "400", "401", "413", "503"}


def test_behind_a_path_prefix_fastapis_own_route_takes_deliveries(pg_server_url, store):
    # Behind a proxy the ASGI path carries the prefix: the receiver's shortcut for POST /webhooks/zoho does
    # not match it, and FastAPI routes the delivery to the same endpoint.
    with running_receiver("/tds", database_url=pg_server_url, schema=store.schema, token=TOKEN) as url:
        answers = [post(url, body_of({"invoice": INVOICE})), post(url, b"not JSON"), post(url, b"{}", token=None)]
        health = requests.get(f"{url}/health", timeout=TIMEOUT)

    assert [answer.status_code for answer in answers] == [200, 400, 401]
    assert health.json()["queue"] == {**NO_ITEMS, "PENDING": 1, "DEAD_LETTER": 1}


# ---- the simulator's deliveries, and SQLite ---------------------------------------------------------------


def test_the_simulators_signed_deliveries_are_queued(pg_server_url, store):
    with (
        running_receiver(database_url=pg_server_url, schema=store.schema, token=TOKEN, secret=SECRET) as url,
        running_simulator(
            records=5, webhook_url=f"{url}/webhooks/zoho?source=zoho", webhook_token=TOKEN, webhook_secret=SECRET
        ) as sim,
    ):
        bill_id = requests.get(f"{sim.url}/admin/bills", timeout=TIMEOUT).json()["ids"][0]
        record = requests.get(f"{sim.url}/admin/bills/{bill_id}", timeout=TIMEOUT).json()["record"]
        requests.put(f"{sim.url}/admin/bills/{bill_id}", json={**record, "status": "paid"}, timeout=TIMEOUT)
        requests.delete(f"{sim.url}/admin/bills/{bill_id}", timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while len(rows := queue_rows(store.observer)) < 2:
            assert time.monotonic() < deadline, f"deliveries not queued: {rows}"
            time.sleep(0.05)

    assert [(row["entity"], row["zoho_id"], row["event"]) for row in rows] == [
        ("bills", bill_id, "webhook"),
        ("bills", bill_id, "webhook_deleted"),
    ]
    assert rows[0]["payload"]["status"] == "paid"


def test_sqlite_smoke(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    upgrade(url)
    with running_receiver(database_url=url, token=TOKEN) as receiver:
        first = post(receiver, body_of({"invoice": INVOICE}))
        again = post(receiver, body_of({"invoice": INVOICE}))
        unusable = [post(receiver, b"not JSON") for _ in range(2)]
        health = requests.get(f"{receiver}/health", timeout=TIMEOUT).json()

    assert first.status_code == 200 and again.json() == {"id": first.json()["id"], "duplicate": True}
    assert [answer.status_code for answer in unusable] == [400, 400]
    assert health["queue"] == {**NO_ITEMS, "PENDING": 1, "DEAD_LETTER": 1}
    assert health["oldest_pending_age_seconds"] >= 0
    observer = create_engine(url)
    rows = queue_rows(observer)
    observer.dispose()
    assert [(row["status"], row["event"]) for row in rows] == [
        ("PENDING", "webhook"),
        ("DEAD_LETTER", "webhook_unusable"),
    ]
    assert rows[0]["payload"] == INVOICE
