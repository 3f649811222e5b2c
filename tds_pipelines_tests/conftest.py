"""Shared fixtures: a throwaway PostgreSQL database per test session, SQLite files, a running simulator."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get("TDS_TEST_PG_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def _admin_engine():
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_server_url():
    """Base URL of a throwaway database created for this session, dropped at its end.

    Without PostgreSQL the tests that need it are skipped, saying why; under CI=true that is a failure."""
    name = f"tds_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = _admin_engine()
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "no PostgreSQL here"
        reason = f"PostgreSQL not reachable at {ADMIN_URL.split('@')[-1]}: {type(exc).__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true requires PostgreSQL)")
        pytest.skip(reason)
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from tds_pipelines.erp.db import make_engine

    make_engine.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
