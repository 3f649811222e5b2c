"""Helpers to run the Zoho simulator from tests: `running_simulator(**overrides)` and the `simulator` fixture.

from tds_pipelines_tests.simulator_fixtures import running_simulator, simulator  # noqa: F401

def test_x(simulator): ...                      # default config: Zoho's own limits
with running_simulator(records=200, rate_limit_per_minute=0) as sim: ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests

from tds_pipelines.simulator import RunningSimulator, SimulatorConfig, start_simulator


@contextmanager
def running_simulator(**config_overrides: object) -> Iterator[RunningSimulator]:
    """A simulator on a free loopback port with `SimulatorConfig` fields overridden; stopped on exit."""
    config_overrides.setdefault("port", 0)
    config_overrides.setdefault("host", "127.0.0.1")
    sim = start_simulator(SimulatorConfig(**config_overrides))  # type: ignore[arg-type]
    try:
        yield sim
    finally:
        sim.stop()


def authorized_session(sim: RunningSimulator) -> requests.Session:
    """A session whose calls carry a fresh access token (issued directly: no refresh call is spent)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Zoho-oauthtoken {sim.access_token()}"
    session.params = {"organization_id": sim.config.organization_id}  # type: ignore[assignment]
    return session


@pytest.fixture
def simulator() -> Iterator[RunningSimulator]:
    """A simulator with the default configuration (50 records per entity, Zoho's limits)."""
    with running_simulator() as sim:
        yield sim
