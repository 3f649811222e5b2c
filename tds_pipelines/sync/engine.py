"""The generic pull sync: list -> de-duplicate -> diff -> fetch details of changed -> upsert -> tombstone.

One function serves every entity of the registry, every job (full, incremental, partition windows) and the
`tds sync` command. Pages stream through: at most one page of records is held at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine

from tds_pipelines import settings
from tds_pipelines.entities import EntitySpec
from tds_pipelines.erp import state as sync_state
from tds_pipelines.erp.dead_letters import keep_rejected_record
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.erp.upsert import load_versions, tombstone_missing, upsert_rows
from tds_pipelines.sync.stats import SyncStats
from tds_pipelines.sync.transform import RecordError, record_version, summary_hash, to_row
from tds_pipelines.zoho.client import ZohoClient
from tds_pipelines.zoho.errors import BudgetShareExceeded, ZohoNotFound

log = logging.getLogger(__name__)

ZOHO_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


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


def plan_listing(spec: EntitySpec, scope: Scope, cursor: datetime | None, today: date) -> ListingPlan:
    """The list parameters for `spec` under `scope`, following the entity's incremental strategy."""
    params = dict(spec.list_params)
    if spec.status_all:
        params["filter_by"] = "Status.All"
    if scope.kind == "window":
        if not spec.date_field:
            raise ValueError(f"{spec.name} has no document date: it cannot be synced by date window")
        params |= {"date_start": scope.start.isoformat(), "date_end": scope.end.isoformat()}
        return ListingPlan(params, None, True, False)
    if scope.kind == "full" or cursor is None or spec.strategy == "full_only":
        return ListingPlan(params, None, True, False)
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
    """Sync one entity from Zoho into the ERP; returns the figures. Zoho and database errors propagate."""
    started = time.monotonic()
    calls_before = client.calls
    stats = SyncStats(entity=spec.name, scope=scope.label)
    table = entity_tables[spec.name]
    synced_at = datetime.now(UTC)
    with engine.connect() as conn:
        current = sync_state.read_state(conn, spec.name)
    cursor = current.cursor if current else None
    plan = plan_listing(spec, scope, cursor, date.today())
    listed_ids: set[str] = set()
    newest = cursor
    try:
        for page in client.list_pages(spec.api, spec.path, spec.list_key, plan.params, id_field=spec.id_field):
            stats.pages += 1
            stats.duplicates += page.duplicates
            summaries = _with_ids(spec, engine, page.records, stats)
            summaries, reached_stop = _until_stop(spec, summaries, plan.stop_before)
            stats.fetched += len(summaries)
            listed_ids.update(str(s[spec.id_field]) for s in summaries)
            rows = _changed_rows(spec, client, engine, summaries, synced_at, stats)
            page_newest = max(filter(None, (_version_or_none(spec, s) for s in summaries)), default=None)
            newest = max(filter(None, (newest, page_newest)), default=None)
            with engine.begin() as conn:
                _write(conn, spec, table, rows, stats)
                if plan.cursor_per_page and newest:
                    sync_state.advance_cursor(conn, spec.name, newest, run_id, None, full=False)
            if reached_stop:
                break
        stats.complete = True
    except BudgetShareExceeded as exc:
        stats.skipped_reason = str(exc)
        log.warning("%s: %s", spec.name, exc)
    finally:
        stats.api_calls = client.calls - calls_before
        stats.seconds = time.monotonic() - started
    if stats.complete:
        with engine.begin() as conn:
            if plan.full_scope:
                window = (spec.date_field, scope.start, scope.end) if scope.kind == "window" else None
                stats.tombstoned = tombstone_missing(conn, table, listed_ids, window=window)
            if scope.kind != "window":
                stats.seconds = time.monotonic() - started
                sync_state.advance_cursor(conn, spec.name, newest, run_id, stats.as_metadata(), full=plan.full_scope)
    return stats


def _version_or_none(spec: EntitySpec, record: dict) -> datetime | None:
    """The record's version; None where it cannot be read (to_row then rejects the record with its reason)."""
    try:
        return record_version(spec, record)
    except RecordError:
        return None


def reject_record(engine: Engine, stats: SyncStats, zoho_id: str | None, record: dict, reason: str) -> None:
    """Keep a record that cannot be stored as a dead letter of `stats.entity`, and count it."""
    stats.rejected += 1
    stats.errors.append(reason)
    with engine.begin() as conn:
        keep_rejected_record(conn, stats.entity, zoho_id, record, reason)


def _with_ids(spec: EntitySpec, engine: Engine, records: list[dict], stats: SyncStats) -> list[dict]:
    """The records that carry their id; the others are kept as dead letters."""
    kept = []
    for record in records:
        if isinstance(record, dict) and record.get(spec.id_field) not in (None, ""):
            kept.append(record)
        else:
            reason = f"{spec.name} record without {spec.id_field} in the list answer"
            reject_record(engine, stats, None, record if isinstance(record, dict) else {"value": record}, reason)
    return kept


def _until_stop(spec: EntitySpec, records: list[dict], stop_before: datetime | None) -> tuple[list[dict], bool]:
    """For sorted_stop listings: the records at or after the cursor, and whether older ones were reached."""
    if stop_before is None:
        return records, False
    kept = [r for r in records if (v := _version_or_none(spec, r)) is None or v >= stop_before]
    return kept, len(kept) < len(records)


def _changed_rows(
    spec: EntitySpec,
    client: ZohoClient,
    engine: Engine,
    summaries: list[dict],
    synced_at: datetime,
    stats: SyncStats,
) -> list:
    """Rows for the new or changed records of a page; details are fetched only for those."""
    ids = [str(s[spec.id_field]) for s in summaries]
    with engine.connect() as conn:
        known = load_versions(conn, entity_tables[spec.name], ids)
    rows = []
    for summary in summaries:
        zoho_id = str(summary[spec.id_field])
        if not _is_changed(spec, summary, known.get(zoho_id)):
            stats.unchanged += 1
            continue
        record = summary
        if spec.needs_detail:
            try:
                record = client.get_record(spec.api, f"{spec.path}/{zoho_id}", spec.get_key)
            except ZohoNotFound:
                continue  # deleted between the list and the GET: the next full listing tombstones it
            finally:
                stats.detail_calls += 1
        try:
            rows.append(to_row(spec, record, synced_at, summary=summary))
        except RecordError as exc:
            reject_record(engine, stats, zoho_id, record, str(exc))
    return rows


def _is_changed(spec: EntitySpec, summary: dict, known) -> bool:
    """Changed unless the ERP holds this version (unversioned: this summary hash), not tombstoned."""
    if known is None or known.tombstoned:
        return True
    version = _version_or_none(spec, summary)
    if version is not None and "last_modified_time" in summary and known.version is not None:
        return version > known.version
    return summary_hash(summary) != known.summary_hash


def _write(conn, spec: EntitySpec, table, rows: list, stats: SyncStats) -> None:
    if not rows:
        return
    result = upsert_rows(conn, table, rows)
    stats.inserted += result.inserted
    stats.updated += result.updated
    stats.stale += result.stale
    if spec.date_field:
        written = set(result.written_ids)
        start = settings.history_start()
        for row in rows:
            doc_date = row.values.get(spec.date_field)
            if row.zoho_id in written and isinstance(doc_date, date) and doc_date >= start:
                stats.months.add(doc_date.replace(day=1).isoformat())
