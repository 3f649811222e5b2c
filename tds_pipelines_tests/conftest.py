"""Shared fixtures: throwaway PostgreSQL databases per test session (the ERP's, and Dagster's own)."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get("TDS_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


@contextmanager
def throwaway_database(purpose: str):
    """A database created for this session and dropped at its end; yields its URL.

    Without PostgreSQL the tests that need it are skipped, saying why; under CI=true that is a failure."""
    name = f"tds_{purpose}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL here"
        admin.dispose()
        reason = f"PostgreSQL not reachable at {ADMIN_URL.split('@')[-1]}: {type(exc).__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true requires PostgreSQL)")
        pytest.skip(reason)
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from tds_pipelines.erp.db import make_engine

        make_engine.cache_clear()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_server_url():
    """The ERP test database: every test makes its own schema in it."""
    with throwaway_database("test") as url:
        yield url


@pytest.fixture(scope="session")
def pg_dagster_url():
    """A separate database for a Dagster instance, as production keeps Dagster apart from the ERP."""
    with throwaway_database("dagster") as url:
        yield url


@pytest.fixture
def erp(pg_server_url):
    """A fresh, migrated TDS schema for one test: (engine, observer), the observer a separate engine that
    every assertion reads through."""
    from tds_pipelines_tests.sync_fixtures import fresh_erp

    store = fresh_erp(pg_server_url)
    yield store.engine, store.observer
    store.observer.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def store(request, tmp_path):
    """(engine, observer) on a fresh PostgreSQL schema, then on a fresh SQLite file: the PostgreSQL matrix
    plus the embedded default's smoke test, from one test."""
    from tds_pipelines_tests.sync_fixtures import fresh_erp

    if request.param == "postgres":
        yield request.getfixturevalue("erp")
        return
    fresh = fresh_erp(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    yield fresh.engine, fresh.observer
    fresh.observer.dispose()
