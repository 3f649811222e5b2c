"""A Zoho Books v3 + Inventory v1 + Accounts simulator on one port, in memory (tests, benchmarks, the demo).

    from tds_pipelines.simulator import SimulatorConfig, start_simulator
    with start_simulator(SimulatorConfig(records=200)) as sim:
        sim.url  # http://127.0.0.1:PORT: /oauth/v2/token, /books/v3/..., /inventory/v1/..., /admin/...

Modules: config (settings), endpoints (Zoho's collections), data (generator), store (records, list/detail
views, version styles), limits (rate limits), auth (tokens), faults, mutations (data changing between two
list pages), webhooks (retried, and duplicated or reordered on demand), stats, api and admin (routes),
replies (JSON answers), server (HTTP), cli (`tds simulator`).
"""

from tds_pipelines.simulator.cli import add_arguments, run
from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.server import RunningSimulator, serve, start_simulator

__all__ = ["RunningSimulator", "SimulatorConfig", "add_arguments", "run", "serve", "start_simulator"]
