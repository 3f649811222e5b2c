"""The `tds simulator` subcommand: `add_arguments(parser)` declares the flags, `run(args)` serves."""

from __future__ import annotations

import argparse

from tds_pipelines.simulator.config import VERSION_STYLES, SimulatorConfig
from tds_pipelines.simulator.endpoints import ADMIN_ENTITIES
from tds_pipelines.simulator.server import serve


def _entity_count(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or name not in ADMIN_ENTITIES or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=N with NAME one of {', '.join(ADMIN_ENTITIES)}")
    return name, int(count)


def _entity_style(text: str) -> tuple[str, str]:
    name, sep, style = text.partition("=")
    if not sep or name not in ADMIN_ENTITIES or style not in VERSION_STYLES:
        raise argparse.ArgumentTypeError(
            f"expected NAME=STYLE with NAME one of {', '.join(ADMIN_ENTITIES)} and STYLE one of "
            + ", ".join(VERSION_STYLES)
        )
    return name, style


EPILOG = """\
admin routes (no auth, never limited): GET /admin/stats; POST /admin/reset-stats, /admin/reset-limits,
/admin/expire-tokens; POST /admin/limits {"rate_limit_per_minute", "daily_limit", "concurrency_limit",
"fault_rate"}; GET|POST /admin/webhooks; GET /admin/<entity>; GET|PUT|PATCH|DELETE /admin/<entity>/<id>.

faults: POST /admin/faults {"kind": K, "count": 1, "path_contains": ""} with K one of
  500 | 503 (+ "retry_after": N sends Retry-After: N) | timeout (+ "delay_seconds": 35) | malformed |
  duplicate (a later list page repeats the previous page's last record) |
  mutate (+ "action": "delete|rename|insert|edit", "after_page": 1, "zoho_id": optional): right after
  list page after_page is served, the data changes as a Zoho user would change it (delete it, rename it
  to sort last, edit it, insert a copy that sorts first; default record: the page's first).
GET /admin/faults shows {"armed": [...], "applied": [...]} (each applied mutation's action and zoho_id);
DELETE /admin/faults clears both.

webhooks (--webhook-url): every admin change (PUT/PATCH/DELETE /admin/<entity>/<id>, mutate faults) is
POSTed as a Zoho workflow rule would. A delivery answered non-2xx or failing to connect is retried
(--webhook-retries, after --webhook-retry-delay doubling); --webhook-duplicate-rate and
--webhook-reorder-window send some twice and shuffle them, as Zoho does under load.
GET /admin/webhooks: the settings, "pending" (deliveries not final yet; 0: all done), "held", "sent",
"failed", "given_up" and "deliveries" (latest attempts: delivery, entity, id, event, status, ok, attempt,
duplicate, final, retry_in). POST /admin/webhooks {"duplicate_rate": F, "reorder_window": N, "retries": N,
"retry_delay_seconds": S, "duplicate_delay_seconds": S, "reorder_flush_seconds": S,
"retry_max_delay_seconds": S} changes any of them at run time (409 without --webhook-url).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the simulator's flags (DESIGN §4 plus a few for tests and benchmarks) and its help epilog."""
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the epilog's lines
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
    parser.add_argument(
        "--webhook-duplicate-rate",
        type=float,
        default=d.webhook_duplicate_rate,
        metavar="F",
        help="0..1: probability a webhook is sent a second time, up to 1 s after the first (default 0)",
    )
    parser.add_argument(
        "--webhook-reorder-window",
        type=int,
        default=d.webhook_reorder_window,
        metavar="N",
        help="hold webhooks N at a time and send each window shuffled; a partial window goes after 1 s "
        "(default 0: in order)",
    )
    parser.add_argument(
        "--webhook-retries",
        type=int,
        default=d.webhook_retries,
        metavar="N",
        help="retries of a webhook answered non-2xx or failing to connect, 0..10 (default 3)",
    )
    parser.add_argument(
        "--webhook-retry-delay",
        type=float,
        default=d.webhook_retry_delay_seconds,
        metavar="SECONDS",
        help="wait before the first retry, doubling at each (at most 60 s; default 1)",
    )
    parser.add_argument(
        "--webhook-seed", type=int, metavar="N", help="seed of webhook duplicates and shuffles (default: --seed)"
    )
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
    parser.add_argument(
        "--version-style",
        metavar="NAME=STYLE",
        type=_entity_style,
        action="append",
        default=[],
        help="how one entity's records show their version (repeatable): timestamp (default), date "
        "(last_modified_time as YYYY-MM-DD), none (no created/last_modified/updated time), list_only (the "
        "list has last_modified_time, the GET not); filters and sorting still use the real times",
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The `SimulatorConfig` the parsed flags describe."""
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
        webhook_duplicate_rate=args.webhook_duplicate_rate,
        webhook_reorder_window=args.webhook_reorder_window,
        webhook_retries=args.webhook_retries,
        webhook_retry_delay_seconds=args.webhook_retry_delay,
        webhook_seed=args.webhook_seed,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        organization_id=args.organization_id,
        token_lifetime_seconds=args.token_lifetime,
        creditnotes_modified_filter=args.creditnotes_modified_filter,
        version_style=dict(args.version_style),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    serve(config_from_args(args))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tds simulator", description="Zoho Books/Inventory simulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
