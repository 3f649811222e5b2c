"""The sync cursor per entity: advanced in the caller's transaction, never backwards."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine

from tds_pipelines.erp.db import make_engine, normalize_url
from tds_pipelines.erp.migrate import upgrade
from tds_pipelines.erp.state import advance_cursor, read_state

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["postgresql", "sqlite"])
def engines(request, tmp_path_factory):
    """(writer, separate reader) on a freshly migrated database."""
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_server_url")
        schema = f"state_{uuid.uuid4().hex[:8]}"
        upgrade(url, schema)
        writer = make_engine(url, schema)
        reader = create_engine(normalize_url(url), connect_args={"options": f"-csearch_path={schema}"})
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('state') / 'erp.sqlite'}"
        upgrade(url)
        writer, reader = make_engine(url), create_engine(url)
    yield writer, reader
    reader.dispose()


def entity_name() -> str:
    return f"invoices_{uuid.uuid4().hex[:6]}"


def test_no_state_before_the_first_sync(engines):
    _, reader = engines
    with reader.connect() as conn:
        assert read_state(conn, entity_name()) is None


def test_cursor_advances_and_never_moves_backwards(engines):
    writer, reader = engines
    name = entity_name()
    with writer.begin() as conn:
        advance_cursor(conn, name, T0, "run-1", None, full=False)
    with writer.begin() as conn:
        state = advance_cursor(conn, name, T0 - timedelta(days=1), "run-2", None, full=False)
    assert state.cursor == T0
    with writer.begin() as conn:
        advance_cursor(conn, name, None, "run-3", None, full=False)
    with reader.connect() as conn:
        state = read_state(conn, name)
    assert state.cursor == T0 and state.cursor.tzinfo is not None
    assert state.last_run_id == "run-3"
    assert state.last_sync_at is None and state.last_full_sync_at is None  # only pages so far
    with writer.begin() as conn:
        advance_cursor(conn, name, T0 + timedelta(seconds=1), "run-4", None, full=False)
    with reader.connect() as conn:
        assert read_state(conn, name).cursor == T0 + timedelta(seconds=1)


def test_cursor_compares_instants_across_offsets(engines):
    writer, reader = engines
    name = entity_name()
    baghdad = datetime.fromisoformat("2026-03-01T15:00:00+03:00")  # 12:00Z
    with writer.begin() as conn:
        advance_cursor(conn, name, baghdad, None, None, full=False)
        advance_cursor(conn, name, datetime.fromisoformat("2026-03-01T11:30:00+00:00"), None, None, full=False)
    with reader.connect() as conn:
        assert read_state(conn, name).cursor == T0


def test_finished_sync_records_its_figures(engines):
    writer, reader = engines
    name = entity_name()
    with writer.begin() as conn:
        advance_cursor(conn, name, T0, "run-1", {"inserted": 3, "note": "عربي"}, full=True, now=T0)
    with writer.begin() as conn:
        advance_cursor(conn, name, T0, "run-2", None, full=False, now=T0 + timedelta(minutes=1))
    with writer.begin() as conn:
        advance_cursor(conn, name, T0, "run-3", {"inserted": 1}, full=False, now=T0 + timedelta(hours=1))
    with reader.connect() as conn:
        state = read_state(conn, name)
    assert state.last_stats == {"inserted": 1}
    assert state.last_full_sync_at == T0  # only a full sync moves it
    assert state.last_sync_at == T0 + timedelta(hours=1)
    assert state.updated_at == T0 + timedelta(hours=1)


def test_cursor_moves_with_the_callers_transaction(engines):
    writer, reader = engines
    name = entity_name()
    with writer.connect() as conn:
        transaction = conn.begin()
        advance_cursor(conn, name, T0, "run-1", None, full=False)
        transaction.rollback()
    with reader.connect() as conn:
        assert read_state(conn, name) is None
