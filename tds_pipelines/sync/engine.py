"""The generic pull sync: list -> de-duplicate -> diff -> fetch details of changed -> upsert -> tombstone.

One function serves every entity of the registry, every job (full, incremental, partition windows) and the
`tds sync` command. Pages stream through: at most one page of records is held at a time. Nothing a page
holds is lost: a record that cannot become a row, or that the database refuses, is kept as a dead letter
(once per version) and the rest of the page is applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, Engine

from tds_pipelines import settings
from tds_pipelines.entities import BY_NAME, EntitySpec
from tds_pipelines.erp import state as sync_state
from tds_pipelines.erp.db import write_transaction
from tds_pipelines.erp.dead_letters import keep_rejected_record, rejected_keys
from tds_pipelines.erp.locks import sync_lock
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.erp.upsert import load_versions, missing_ids, tombstone_ids
from tds_pipelines.sync.apply import record_row, write_rows
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.transform import RecordError, parse_timestamp, record_version, summary_hash
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.errors import BudgetShareExceeded, ZohoBadResponse, ZohoNotFound

log = logging.getLogger(__name__)

ZOHO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
# Small full-only sets (price lists, users, warehouses) are listed by the daily full sync; an incremental
# run lists one again only when its last full listing is older than this.
FULL_ONLY_EVERY = timedelta(hours=24)
TOMBSTONE_ALWAYS_ALLOWED = 10  # rows one listing may tombstone whatever the table's size


@dataclass(frozen=True)
class Scope:
    """What a run covers: everything, what changed since the cursor, or documents dated in a window."""

    kind: Literal["full", "incremental", "window"]
    start: date | None = None
    end: date | None = None  # inclusive

    @property
    def label(self) -> str:
        return f"window {self.start}..{self.end}" if self.kind == "window" else self.kind


@dataclass(frozen=True)
class ListingPlan:
    params: dict[str, str]
    stop_before: datetime | None  # sorted_stop: records older than this end the listing
    full_scope: bool  # the listing covers every record in scope: tombstones allowed once it completes
    cursor_per_page: bool  # pages ascend by version: the cursor may advance with each page


def cursor_field(spec: EntitySpec) -> str | None:
    """The list field an incremental listing of `spec` filters or stops on (None: no cursor)."""
    return {"modified_since": "last_modified_time", "sorted_stop": spec.sort_field}.get(spec.strategy)


def plan_listing(
    spec: EntitySpec, scope: Scope, cursor: datetime | None, today: date, listed_whole: bool = False
) -> ListingPlan:
    """The list parameters for `spec` under `scope`, following the entity's incremental strategy. An
    incremental listing needs what the entity's strategy starts from: a cursor, or (`date_window`, which has
    none) a complete listing before (`listed_whole`); without it, the entity is listed whole."""
    params = dict(spec.list_params)
    if spec.status_all:
        params["filter_by"] = "Status.All"
    full_order = {"sort_column": spec.full_sort, "sort_order": "A"} if spec.full_sort else {}
    if scope.kind == "window":
        if not spec.date_field:
            raise ValueError(f"{spec.name} has no document date: it cannot be synced by date window")
        params |= {"date_start": scope.start.isoformat(), "date_end": scope.end.isoformat(), **full_order}
        return ListingPlan(params, None, True, False)
    unknown = not listed_whole if spec.strategy == "date_window" else cursor is None
    if scope.kind == "full" or unknown or spec.strategy == "full_only":
        return ListingPlan(params | full_order, None, True, False)
    # The cursor is Zoho's own newest version, asked for "at or after": the newest records come again (and
    # are found unchanged) rather than one saved in the same second being missed. Whatever a listing still
    # misses, the daily full sync and the webhooks bring.
    if spec.strategy == "modified_since":
        params |= {
            "last_modified_time": cursor.strftime(ZOHO_TIME_FORMAT),
            "sort_column": "last_modified_time",
            "sort_order": "A",
        }
        return ListingPlan(params, None, False, True)
    if spec.strategy == "sorted_stop":
        params |= {"sort_column": spec.sort_field, "sort_order": "D"}
        return ListingPlan(params, cursor, False, False)
    # date_window: no change filter exists, so re-list the recent documents.
    params |= {
        "date_start": (today - timedelta(days=spec.window_days)).isoformat(),
        "date_end": today.isoformat(),
    }
    return ListingPlan(params, None, False, False)


def sync_entity(
    spec: EntitySpec,
    client: ZohoClient,
    engine: Engine,
    scope: Scope,
    run_id: str | None = None,
) -> SyncStats:
    """Sync one entity from Zoho into the ERP; returns the figures. One sync per entity at a time: a second
    one skips (``stats.skipped == "busy"``) rather than doubling the calls. Zoho and database errors
    propagate; a spent daily share ends the sync with ``stats.skipped == "budget"``."""
    stats = SyncStats(entity=spec.name, scope=scope.label)
    started, calls_before = time.monotonic(), client.calls
    with sync_lock(engine, spec.name) as taken:
        if not taken:
            stats.skip("busy", f"another run is syncing {spec.name} right now; this run leaves it to that one")
            log.warning("%s: %s", spec.name, stats.skipped_reason)
            return stats
        try:
            _sync_locked(spec, client, engine, scope, run_id, stats)
        except BudgetShareExceeded as exc:
            stats.skip("budget", str(exc))
        finally:
            stats.api_calls = client.calls - calls_before
            stats.seconds = time.monotonic() - started
    if stats.skipped == "budget":
        log.warning("%s: %s", spec.name, stats.skipped_reason)
    return stats


def _sync_locked(
    spec: EntitySpec, client: ZohoClient, engine: Engine, scope: Scope, run_id: str | None, stats: SyncStats
) -> None:
    started, calls_before = time.monotonic(), client.calls
    table = entity_tables[spec.name]
    synced_at = datetime.now(UTC)
    with engine.connect() as conn:
        states = sync_state.read_states(conn)
    current = states.get(spec.name)
    if scope.kind == "incremental" and spec.strategy == "full_only" and _listed_whole_recently(current, synced_at):
        stats.skip("not_due", f"listed whole by the full sync at {current.last_full_sync_at:%Y-%m-%d %H:%M} UTC")
        return
    if scope.kind == "full" and (reason := _starves_staler(spec, client, current, states)):
        stats.skip("budget", reason)
        return
    cursor = current.cursor if current else None
    listed_whole = current is not None and current.last_full_sync_at is not None
    plan = plan_listing(spec, scope, cursor, date.today(), listed_whole)
    listed_ids: set[str] = set()
    newest = cursor
    for page in client.list_pages(spec.api, spec.path, spec.list_key, plan.params, id_field=spec.id_field):
        stats.pages += 1
        stats.duplicates += page.duplicates
        summaries = _newest_copies(spec, _with_ids(spec, engine, page.records, stats), stats)
        summaries, reached_stop = _until_stop(spec, summaries, plan.stop_before)
        stats.fetched += len(summaries)
        listed_ids.update(summaries)
        rows, gone = _changed_rows(spec, client, engine, summaries.values(), synced_at, stats)
        newest = max(filter(None, (newest, *(_cursor_value(spec, s) for s in summaries.values()))), default=None)
        _write_page(engine, spec, rows, stats, newest if plan.cursor_per_page else None, run_id)
        if gone:  # a detail GET answered not-found: deleted since the listing, proven at no extra cost
            with engine.begin() as conn:
                stats.tombstoned += tombstone_ids(conn, table, gone)
        if reached_stop:
            break
    stats.complete = True
    if plan.full_scope:
        window = (spec.date_field, scope.start, scope.end) if scope.kind == "window" else None
        _tombstone_confirmed(spec, client, engine, listed_ids, window, synced_at, stats)
        stats.all_months = scope.kind == "full"
    elif scope.kind == "incremental":
        stats.notes.append(
            "deletions: found by the daily full sync (each confirmed by a GET); this run tombstoned only "
            "records whose detail GET answered not-found"
        )
    if newest is None and cursor_field(spec) and stats.fetched:
        stats.notes.append(f"the list carries no {cursor_field(spec)}: incremental runs list {spec.name} whole")
    if scope.kind != "window":
        stats.api_calls, stats.seconds = client.calls - calls_before, time.monotonic() - started
        with engine.begin() as conn:
            sync_state.advance_cursor(conn, spec.name, newest, run_id, stats.as_metadata(), full=plan.full_scope)


def _listed_whole_recently(current: sync_state.SyncState | None, now: datetime) -> bool:
    return bool(current and current.last_full_sync_at and now - current.last_full_sync_at < FULL_ONLY_EVERY)


def _starves_staler(
    spec: EntitySpec, client: ZohoClient, current: sync_state.SyncState | None, states: dict
) -> str | None:
    """Why a full listing of `spec` should step aside, if it would eat the calls that entities fully synced
    less recently still need: whatever order a job runs its entities in, none starves day after day."""
    mine = _full_cost(current)
    status = client.budget.share_status() if mine is not None else None
    if status is None or status.available is None:
        return None  # never fully synced (nothing waited longer), or no daily limit known
    staler = {
        name: cost
        for name, state in states.items()
        if name != spec.name
        and name in BY_NAME
        and (cost := _full_cost(state)) is not None
        and state.last_full_sync_at < current.last_full_sync_at
    }
    if mine + sum(staler.values()) <= status.available:
        return None
    return (
        f"job {client.job!r} may spend {status.available} more calls today; a full listing of {spec.name} took "
        f"{mine}, and {', '.join(sorted(staler)) or 'no entity'} (fully synced less recently) need "
        f"{sum(staler.values())}: left to them, {spec.name} goes first once it is the one that waited longest"
    )


def _full_cost(state: sync_state.SyncState | None) -> int | None:
    """The calls the entity's last full listing took (None before one finished)."""
    if state is None or state.last_full_sync_at is None or not state.last_full_stats:
        return None
    return int(state.last_full_stats.get("api_calls") or 0)


# -- one page -----------------------------------------------------------------------------------------


def reject_record(
    engine: Engine, stats: SyncStats, zoho_id: str | None, record: object, reason: str, key: str | None = None
) -> None:
    """Keep a record that cannot be stored as a dead letter of `stats.entity` (once per `key`, by default the
    record's own hash), and count it."""
    with engine.begin() as conn:
        _keep_rejected(conn, stats, zoho_id, record, reason, key)


def _keep_rejected(
    conn: Connection, stats: SyncStats, zoho_id: str | None, record: object, reason: str, key: str | None
) -> None:
    """reject_record in the caller's transaction."""
    stats.rejected += 1
    stats.errors.append(reason)
    key = key or summary_hash(record if isinstance(record, dict) else {"value": record})
    keep_rejected_record(conn, stats.entity, zoho_id, record, reason, key)


def _with_ids(spec: EntitySpec, engine: Engine, records: list, stats: SyncStats) -> list[dict]:
    """The records that are objects carrying their id; the others are kept as dead letters."""
    kept = []
    for record in records:
        if isinstance(record, dict) and record.get(spec.id_field) not in (None, ""):
            kept.append(record)
        elif isinstance(record, dict):
            reject_record(engine, stats, None, record, f"{spec.name} record without {spec.id_field} in the list")
        else:
            reason = f"{spec.name} list entry is not a JSON object: {type(record).__name__}"
            reject_record(engine, stats, None, record, reason)
    return kept


def _newest_copies(spec: EntitySpec, records: list[dict], stats: SyncStats) -> dict[str, dict]:
    """One record per id, by id: the newest copy where a page holds several (a later copy wins a tie)."""
    kept: dict[str, dict] = {}
    for record in records:
        zoho_id = str(record[spec.id_field])
        current = kept.get(zoho_id)
        if current is not None:
            stats.duplicates += 1
            new, old = _version_or_none(spec, record), _version_or_none(spec, current)
            if new is not None and old is not None and new < old:
                continue
        kept[zoho_id] = record
    return kept


def _version_or_none(spec: EntitySpec, record: dict) -> datetime | None:
    """The record's version; None where it cannot be read (to_row then rejects the record with its reason)."""
    try:
        return record_version(spec, record)
    except RecordError:
        return None


def _cursor_value(spec: EntitySpec, record: dict) -> datetime | None:
    """The instant the record stands at in the incremental order, or None without one. A bare date
    (``2013-01-24``, the org's calendar day) counts as the day before, in UTC: never after any moment of
    that local day, whatever the org's offset."""
    field = cursor_field(spec)
    value = record.get(field) if field else None
    try:
        instant = parse_timestamp(value)
    except ValueError:
        return None
    if instant is not None and isinstance(value, str) and len(value.strip()) <= 10:
        instant -= timedelta(days=1)
    return instant


def _until_stop(
    spec: EntitySpec, records: dict[str, dict], stop_before: datetime | None
) -> tuple[dict[str, dict], bool]:
    """For sorted_stop listings: the records at or after the cursor, and whether older ones were reached.
    Records without the sort field never stop a listing."""
    if stop_before is None:
        return records, False
    kept = {i: r for i, r in records.items() if (v := _cursor_value(spec, r)) is None or v >= stop_before}
    return kept, len(kept) < len(records)


def _changed_rows(
    spec: EntitySpec,
    client: ZohoClient,
    engine: Engine,
    summaries: Iterable[dict],
    synced_at: datetime,
    stats: SyncStats,
) -> tuple[list, list[str]]:
    """Rows for the new or changed records of a page (details are fetched only for those), and the ids
    whose detail GET answered not-found."""
    summaries = list(summaries)
    ids = [str(s[spec.id_field]) for s in summaries]
    with engine.connect() as conn:
        known = load_versions(conn, entity_tables[spec.name], ids)
        rejected = rejected_keys(conn, spec.name, ids)
    rows, gone = [], []
    for summary in summaries:
        zoho_id, key = str(summary[spec.id_field]), summary_hash(summary)
        if not _is_changed(spec, summary, key, known.get(zoho_id)):
            stats.unchanged += 1
            continue
        if (zoho_id, key) in rejected:
            stats.already_rejected += 1  # this version is a dead letter already: no detail call again
            continue
        record = summary
        if spec.needs_detail:
            stats.detail_calls += 1
            try:
                record = client.get_record(spec.api, f"{spec.path}/{zoho_id}", spec.get_key)
            except ZohoNotFound:
                gone.append(zoho_id)
                continue
            except ZohoBadResponse as exc:
                # Not this version's fault: kept under its own key, so the next run fetches it again.
                reject_record(engine, stats, zoho_id, summary, f"detail GET unreadable: {exc}", key="fetch:" + key)
                continue
        row = _row_or_reject(spec, engine, stats, record, synced_at, summary, key)
        if row is not None:
            rows.append(row)
    return rows, gone


def _row_or_reject(spec, engine, stats, record, synced_at, summary, key):
    """`record` as a row, or None when any error makes it unstorable: it is then a dead letter with its
    reason (a bug in TDS included: one record never stops a page)."""
    zoho_id = str(summary[spec.id_field])
    try:
        row = record_row(spec, record, synced_at, summary=summary)
    except RecordError as exc:
        reject_record(engine, stats, zoho_id, record, str(exc), key)
        return None
    stats.count_unparseable(zoho_id, row.warnings)
    return row


def _is_changed(spec: EntitySpec, summary: dict, digest: str, known) -> bool:
    """Changed unless the ERP holds this version with this content (`digest`, the summary's hash) or a newer
    version, not tombstoned.

    An equal version proves nothing by itself (bare dates, two edits in one second): the summary's content
    decides, unless the row came whole from a webhook (no summary hash): Zoho sent that very version. Without
    versions on both sides, content alone decides."""
    if known is None or known.tombstoned:
        return True
    version = _version_or_none(spec, summary)
    if version is not None and known.version is not None:
        if version != known.version:
            return version > known.version
        if known.summary_hash is None:
            return False
    return digest != known.summary_hash


def _write_page(
    engine: Engine, spec: EntitySpec, rows: list, stats: SyncStats, cursor: datetime | None, run_id: str | None
) -> None:
    """Upsert a page's rows and advance the cursor in one transaction. Rows the database refuses (a value it
    cannot hold, an ERP constraint) become dead letters in that transaction and the rest is written
    (`sync.apply.write_rows`). Any other database error (gone, no table) stops the sync: no row is to blame."""
    with write_transaction(engine) as conn:
        written = write_rows(conn, spec, rows)
        for row, reason in written.refused:
            _keep_rejected(conn, stats, row.zoho_id, row.values["raw"], reason, row.values["summary_hash"])
        if cursor is not None:
            sync_state.advance_cursor(conn, spec.name, cursor, run_id, None, full=False)
    stats.inserted += written.inserted
    stats.updated += written.updated
    stats.stale += written.stale
    stats.months |= written.months


# -- tombstones ---------------------------------------------------------------------------------------


def _tombstone_confirmed(
    spec: EntitySpec,
    client: ZohoClient,
    engine: Engine,
    listed_ids: set[str],
    window: tuple | None,
    synced_at: datetime,
    stats: SyncStats,
) -> None:
    """After a complete listing of the scope: tombstone the rows it did not show that Zoho confirms gone.

    Offset paging under concurrent edits hides live records, so each candidate is confirmed (a GET
    answering not-found; for entities without a GET, a second listing). A candidate Zoho still has is
    written from what Zoho answered. More candidates than the allowed share of the table (or an empty
    listing of a non-empty table) is refused with a warning: a probable mass deletion or a broken listing."""
    table = entity_tables[spec.name]
    with engine.begin() as conn:
        candidates, live = missing_ids(conn, table, listed_ids, window)
    if not candidates:
        return
    if warning := mass_deletion(f"{spec.name} rows", len(candidates), live, listed_any=bool(listed_ids)):
        stats.tombstones_refused = len(candidates)
        stats.notes.append(warning)
        log.warning("%s", warning)
        return
    confirm = _confirm_by_get if spec.get_key else _confirm_by_listing
    calls_before = client.calls
    try:
        gone = confirm(spec, client, engine, candidates, synced_at, stats)
    finally:
        stats.confirm_calls += client.calls - calls_before
    with engine.begin() as conn:
        stats.tombstoned += tombstone_ids(conn, table, gone)


def mass_deletion(what: str, candidates: int, live: int, listed_any: bool) -> str | None:
    """The warning refusing to tombstone `candidates` of `live` rows at once, or None when it is allowed."""
    allowed = max(TOMBSTONE_ALWAYS_ALLOWED, int(settings.tombstone_max_share() * live))
    if listed_any and candidates <= allowed:
        return None
    return (
        f"refused to tombstone {candidates} of {live} {what} "
        + ("(Zoho listed none)" if not listed_any else f"(more than the {allowed} allowed)")
        + ": a mass deletion or a broken listing? Check Zoho; raise TDS_TOMBSTONE_MAX_SHARE to accept it"
    )


def _confirm_by_get(spec, client, engine, candidates, synced_at, stats) -> list[str]:
    gone, live = [], []
    for zoho_id in candidates:
        try:
            record = client.get_record(spec.api, f"{spec.path}/{zoho_id}", spec.get_key)
        except ZohoNotFound:
            gone.append(zoho_id)
            continue
        live.append(record)
    _write_live(spec, engine, live, synced_at, stats)
    return gone


def _confirm_by_listing(spec, client, engine, candidates, synced_at, stats) -> list[str]:
    wanted = set(candidates)
    params = plan_listing(spec, Scope("full"), None, date.today()).params
    live = [
        record
        for record in client.list_records(spec.api, spec.path, spec.list_key, params, id_field=spec.id_field)
        if isinstance(record, dict) and str(record.get(spec.id_field)) in wanted
    ]
    _write_live(spec, engine, live, synced_at, stats)
    return sorted(wanted - {str(r[spec.id_field]) for r in live})


def _write_live(spec, engine, records: list[dict], synced_at, stats) -> None:
    """Candidates Zoho still has: written from its answer (the listing had missed them)."""
    stats.confirmed_live += len(records)
    rows = [row for r in records if (row := _row_or_reject(spec, engine, stats, r, synced_at, r, None))]
    _write_page(engine, spec, rows, stats, None, None)
