"""Crashes on the deployed shape's shared part: PostgreSQL itself stopped at once and started again (a
throwaway cluster of the test's own, never the machine's server)."""

from __future__ import annotations

import json
import time

import pytest
import requests
from sqlalchemy import create_engine, select

from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.tables import sync_queue
from tds_pipelines_tests.pg_cluster import throwaway_cluster
from tds_pipelines_tests.test_webhook_receiver import INVOICE, TOKEN, post, running_receiver

pytestmark = pytest.mark.postgres
SCHEMA = "tds"


def delivery(n: int) -> bytes:
    return json.dumps({"invoice": {**INVOICE, "invoice_id": f"99{n:013d}"}}).encode()


def test_the_receiver_answers_503_while_postgresql_is_down_and_loses_no_webhook():
    with throwaway_cluster() as cluster:
        upgrade(cluster.url, SCHEMA)
        answered: dict[int, int] = {}
        with running_receiver(database_url=cluster.url, schema=SCHEMA, token=TOKEN) as receiver:
            for n in range(5):
                answered[n] = post(receiver, delivery(n)).status_code
            cluster.stop()
            down = [post(receiver, delivery(n)).status_code for n in range(5, 10)]
            health = requests.get(f"{receiver}/health", timeout=30)
            cluster.start()
            # Zoho retries what was refused: each is stored once the database is back (bounded wait).
            deadline = time.monotonic() + 60
            for n in range(5, 10):
                while (status := post(receiver, delivery(n)).status_code) != 200 and time.monotonic() < deadline:
                    time.sleep(0.5)
                answered[n] = status
        engine = create_engine(cluster.url, connect_args={"options": f"-csearch_path={SCHEMA}"})
        with engine.connect() as conn:
            stored = sorted(conn.execute(select(sync_queue.c.zoho_id)).scalars())
        engine.dispose()

    assert set(down) == {503} and health.status_code == 503
    assert set(answered.values()) == {200}
    assert stored == sorted(f"99{n:013d}" for n in range(10))  # every delivery once, none twice
