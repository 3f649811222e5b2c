"""The `tds` command: schema upgrades, the simulator, the webhook receiver, shell syncs, status, dead letters
and the newcomer's demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from tds_pipelines.cli_errors import describe
from tds_pipelines.entities import BY_NAME, ENTITIES, entity


def build_parser() -> argparse.ArgumentParser:
    """The `tds` command's arguments, every subcommand with its function."""
    parser = argparse.ArgumentParser(prog="tds", description="TDS: Zoho Books/Inventory -> ERP sync")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="the ERP schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="create or migrate the ERP schema on TDS_DATABASE_URL").set_defaults(func=_db_upgrade)

    from tds_pipelines.simulator import cli as simulator_cli

    sim = commands.add_parser("simulator", help="serve a Zoho simulator (accounts, Books, Inventory)")
    simulator_cli.add_arguments(sim)
    sim.set_defaults(func=simulator_cli.run)

    webhooks = commands.add_parser("webhooks", help="serve the webhook receiver (POST /webhooks/zoho, GET /health)")
    webhooks.add_argument("--host", default="127.0.0.1")
    webhooks.add_argument("--port", type=int, default=8000)
    webhooks.set_defaults(func=_webhooks)

    dlq = commands.add_parser("dlq", help="dead letters: list, replay, import the old service's deliveries")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="the newest dead letters with their reasons")
    dlq_list.add_argument("--entity")
    dlq_list.add_argument("--error-contains", help="only those whose error holds this text (any case)")
    dlq_list.add_argument("--limit", type=int, default=50)
    dlq_list.set_defaults(func=_dlq_list)
    replay = dlq_commands.add_parser("replay", help="put dead letters back in the queue (their history kept)")
    replay.add_argument("--id", dest="ids", type=int, action="append", help="repeatable")
    replay.add_argument("--all", action="store_true")
    replay.add_argument("--entity")
    replay.add_argument("--error-contains")
    replay.add_argument("--now", action="store_true", help="apply the queue here and now (else the sensor does)")
    replay.set_defaults(func=_dlq_replay)
    dlq_import = dlq_commands.add_parser("import", help="webhook bodies exported by the old service, one a line")
    dlq_import.add_argument("file")
    dlq_import.set_defaults(func=_dlq_import)

    sync = commands.add_parser("sync", help="run the sync engine from a shell (the jobs use the same code)")
    sync.add_argument("--entity", action="append", choices=[*BY_NAME, "item_stock"], help="repeatable")
    sync.add_argument("--full", action="store_true", help="list everything and tombstone what Zoho lost")
    sync.set_defaults(func=_sync)

    status = commands.add_parser("status", help="queue figures, last syncs per entity, open alerts (as GET /health)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)

    roles = commands.add_parser("roles", help="the deployed shape's processes, one per role, as a Procfile")
    roles.set_defaults(func=_roles)
    role = commands.add_parser("role", help="run one role of the deployed shape (see `tds roles`)")
    role.add_argument("name")
    role.set_defaults(func=_role)

    demo = commands.add_parser("demo", help="the whole system on the embedded default (SQLite + simulator)")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    demo.add_argument("--simulator-port", type=int, default=8765)
    demo.add_argument("--webhook-port", type=int, default=8000, help="webhook receiver port")
    demo.add_argument("--records", type=int, default=60, help="generated records per entity")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # a reader that left early (`| head -1`) shows here rather than at exit
    except BrokenPipeError:
        # The reader has what it wanted. Point stdout at /dev/null so Python's own flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        if args.debug:
            raise
        print(f"tds: {describe(exc)}", file=sys.stderr)
        return 1
    return code


def _webhooks(args) -> int:
    from tds_pipelines.webhooks.app import serve

    serve(args.host, args.port)
    return 0


def _dlq_list(args) -> int:
    from tds_pipelines.erp.db import make_engine
    from tds_pipelines.erp.queue import list_dead_letters

    letters = list_dead_letters(make_engine(), args.limit, entity=args.entity, error_contains=args.error_contains)
    for item in letters:
        error = " ".join((item.last_error or "").split())[:160]
        print(
            f"{item.id:>8}  {item.received_at:%Y-%m-%d %H:%M}  {item.entity or '-':18} {item.zoho_id or '-':20} {error}"
        )
    print(f"{len(letters)} dead letter(s) shown")
    return 0


def _dlq_replay(args) -> int:
    from tds_pipelines.erp.db import make_engine
    from tds_pipelines.erp.queue import replay

    engine = make_engine()
    count = replay(engine, ids=args.ids, all=args.all, entity=args.entity, error_contains=args.error_contains)
    print(f"{count} dead letter(s) back in the queue")
    if args.now:
        from tds_pipelines.sync.apply import drain

        for stats in drain(engine, run_id="tds-dlq-replay").values():
            print(stats.summary())
    else:
        print("zoho_webhook_queue_sensor applies them within seconds (or: tds dlq replay ... --now)")
    return 0


def _dlq_import(args) -> int:
    from tds_pipelines.erp.db import make_engine
    from tds_pipelines.erp.queue import import_deliveries

    with open(args.file, encoding="utf-8") as lines:
        stored, duplicates, unusable = import_deliveries(make_engine(), lines)
    print(f"imported {stored} deliveries as dead letters ({duplicates} already there, {unusable} unusable, kept)")
    print("apply them with: tds dlq replay --all")
    return 0


def _db_upgrade(_args) -> int:
    from tds_pipelines.erp.migrate import upgrade

    upgrade()
    print("ERP schema is up to date")
    return 0


def _sync(args) -> int:
    from tds_pipelines.erp.db import make_engine
    from tds_pipelines.sync.engine import Scope, sync_entity
    from tds_pipelines.sync.stock import sync_item_stock
    from tds_pipelines.zoho.client import ZohoClient

    engine = make_engine()
    try:
        # The README counts shell syncs as "other" in the daily shares, beside manual runs and backfills.
        client = ZohoClient.from_env(engine, "other")
    except ValueError as exc:
        raise SystemExit(f"tds: {exc} (or run `tds demo`, which uses the simulator)") from None
    # An unreachable database or refused credentials fail here, once, rather than once per entity.
    client.tokens.get()
    names = args.entity or [spec.name for spec in ENTITIES]
    scope = Scope("full" if args.full else "incremental")
    failed, skipped = [], []
    for name in names:
        try:
            if name == "item_stock":
                stats = sync_item_stock(client, engine, full=True if args.full else None)
            else:
                stats = sync_entity(entity(name), client, engine, scope)
        except Exception as exc:  # noqa: BLE001 - one entity's failure must not keep the others from syncing
            if args.debug:
                traceback.print_exc()
            print(f"tds: {name} failed: {describe(exc)}", file=sys.stderr)
            failed.append(name)
            continue
        print(stats.summary())
        # "not_due": the full sync listed this small set recently, so it is up to date without a call.
        if stats.skipped != "not_due" and (stats.skipped_reason or not stats.complete):
            skipped.append(name)
    outcome = [f"{len(names) - len(failed) - len(skipped)} of {len(names)} entities synced"]
    outcome += [f"{label}: {', '.join(group)}" for label, group in (("failed", failed), ("skipped", skipped)) if group]
    print("; ".join(outcome))
    return 1 if failed or skipped else 0


def _status(args) -> int:
    from tds_pipelines.erp.db import make_engine
    from tds_pipelines.status import collect_status

    report = collect_status(make_engine())
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("queue:", ", ".join(f"{status} {count}" for status, count in report["queue"].items()) or "empty")
    age, rate = report["oldest_pending_age_seconds"], report["success_rate_24h"]
    print(
        f"oldest pending: {'-' if age is None else f'{age} s'}, dead letters: {report['dead_letters']}, "
        f"stuck: {report['stuck']}, success rate 24 h: {'-' if rate is None else f'{rate:.2%}'}"
    )
    for name, state in report["entities"].items():
        print(f"{name:20} last sync {state['last_sync_at'] or '-':25}  last full {state['last_full_sync_at'] or '-'}")
    print(f"open alerts: {len(report['open_alerts'])}")
    for alert in report["open_alerts"]:
        print(
            f"  {alert['severity']:5} {alert['incident']}  since {alert['since']} ({alert['occurrences']}x): "
            f"{' '.join(alert['message'].split())}"
        )
    return 0


def _roles(_args) -> int:
    from tds_pipelines.roles import procfile

    print(procfile(), end="")
    return 0


def _role(args) -> int:
    from tds_pipelines.roles import command_of

    command = command_of(args.name)  # before replacing this process: a wrong name is one line
    os.execvp("bash", ["bash", "-c", f"exec {command}"])


def _demo(args) -> int:
    from tds_pipelines.demo import run_demo

    return run_demo(args.port, args.simulator_port, args.records, args.webhook_port)


if __name__ == "__main__":
    sys.exit(main())
