"""The `tds simulator` subcommand: `add_arguments(parser)` declares the flags, `run(args)` serves."""

from __future__ import annotations

import argparse

from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.endpoints import ADMIN_ENTITIES
from tds_pipelines.simulator.server import serve


def _entity_count(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or name not in ADMIN_ENTITIES or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N with NAME one of {', '.join(ADMIN_ENTITIES)}")
    return name, int(count)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the simulator's flags (DESIGN §4 plus a few for tests and benchmarks)."""
    d = SimulatorConfig()
    parser.add_argument("--host", default=d.host)
    parser.add_argument("--port", type=int, default=8800, help="0 picks a free port (default 8800)")
    parser.add_argument("--fixtures", metavar="DIR", help="load DIR/<entity>.json (lists of records)")
    parser.add_argument("--records", type=int, default=d.records, help="generated records per entity")
    parser.add_argument(
        "--entity-records",
        metavar="NAME=N",
        type=_entity_count,
        action="append",
        default=[],
        help="generated records for one entity, e.g. products=50000 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--rate-limit-per-minute", type=int, default=d.rate_limit_per_minute, help="0: unlimited")
    parser.add_argument("--daily-limit", type=int, default=d.daily_limit, help="0: unlimited")
    parser.add_argument("--concurrency-limit", type=int, default=d.concurrency_limit, help="0: unlimited")
    parser.add_argument("--fault-rate", type=float, default=d.fault_rate, help="0..1: random 500/503/bad JSON")
    parser.add_argument(
        "--fault-kinds",
        default=",".join(d.fault_kinds),
        help="comma-separated kinds random faults draw from (500,503,malformed,timeout)",
    )
    parser.add_argument("--webhook-url", help="POST every admin change there, as a Zoho workflow rule would")
    parser.add_argument("--webhook-token", help="sent as X-TDS-Token on webhooks")
    parser.add_argument("--webhook-secret", help="sign webhooks with X-Zoho-Webhook-Signature")
    parser.add_argument("--client-id", default=d.client_id)
    parser.add_argument("--client-secret", default=d.client_secret)
    parser.add_argument("--refresh-token", default=d.refresh_token)
    parser.add_argument("--organization-id", default=d.organization_id)
    parser.add_argument("--token-lifetime", type=int, default=d.token_lifetime_seconds, metavar="SECONDS")
    parser.add_argument(
        "--creditnotes-modified-filter",
        action=argparse.BooleanOptionalAction,
        default=d.creditnotes_modified_filter,
        help="whether the credit-note list honours last_modified_time",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        fixtures_dir=args.fixtures,
        records=args.records,
        entity_records=dict(args.entity_records),
        seed=args.seed,
        rate_limit_per_minute=args.rate_limit_per_minute,
        daily_limit=args.daily_limit,
        concurrency_limit=args.concurrency_limit,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k.strip() for k in args.fault_kinds.split(",") if k.strip()),
        webhook_url=args.webhook_url,
        webhook_token=args.webhook_token,
        webhook_secret=args.webhook_secret,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        organization_id=args.organization_id,
        token_lifetime_seconds=args.token_lifetime,
        creditnotes_modified_filter=args.creditnotes_modified_filter,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    serve(config_from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tds simulator", description="Zoho Books/Inventory simulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
