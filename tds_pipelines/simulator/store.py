"""The simulator's in-memory data: one thread-safe store per Zoho collection, plus list/detail views.

Records are kept whole (GET shape). A list query (filters + sort) yields an ordered id list that is cached
until the collection next changes, so paging through 50,000 items costs one sort, then slices.
Ties in any sort are broken by insertion order, so paging is stable while the data does not change.
Records keep their real times: filters and sorting use them whatever `version_shape` serves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from tds_pipelines.simulator.endpoints import COLLECTIONS, Collection
from tds_pipelines.simulator.timestamps import format_ts, parse_ts

_NUMERIC_SORT = frozenset({"total", "balance", "rate", "purchase_rate", "stock_on_hand", "amount"})
_CACHE_LIMIT = 256


@dataclass(frozen=True)
class ListQuery:
    """What narrows and orders a list (everything but the page)."""

    sort_column: str
    sort_order: str  # "A" or "D"
    statuses: frozenset[str] | None = None  # None: every status
    contact_type: str | None = None
    modified_since: float | None = None
    date_start: str | None = None  # inclusive, YYYY-MM-DD
    date_end: str | None = None
    date_exact: str | None = None
    warehouse_id: str | None = None


def _version_of(record: dict) -> float | None:
    return parse_ts(record.get("last_modified_time") or record.get("updated_time"))


class CollectionStore:
    """Records of one collection keyed by id, in insertion order."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.lock = threading.RLock()
        self.records: dict[str, dict] = {}
        self._meta: dict[str, tuple[int, float | None, float | None]] = {}  # id -> (seq, modified, created)
        self._seq = 0
        self._cache: dict[ListQuery, list[str]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def load(self, records: list[dict]) -> None:
        with self.lock:
            for record in records:
                self._put(record)
            self._cache.clear()

    def _put(self, record: dict) -> None:
        rid = str(record[self.collection.id_field])
        if self.collection.name == "creditnotes" and "updated_time" in record:
            # Stored with the list's name for the change time; the GET view shows it as updated_time.
            record = dict(record)
            updated = record.pop("updated_time")
            record.setdefault("last_modified_time", updated)
        old = self._meta.get(rid)
        if old is None:
            self._seq += 1
        seq = old[0] if old else self._seq
        self.records[rid] = record
        self._meta[rid] = (seq, _version_of(record), parse_ts(record.get("created_time")))

    def put(self, record: dict) -> dict | None:
        """Create or replace; returns the previous record, if any."""
        with self.lock:
            previous = self.records.get(str(record[self.collection.id_field]))
            self._put(record)
            self._cache.clear()
            return previous

    def delete(self, record_id: str) -> dict | None:
        with self.lock:
            previous = self.records.pop(record_id, None)
            if previous is not None:
                self._meta.pop(record_id, None)
                self._cache.clear()
            return previous

    def get(self, record_id: str) -> dict | None:
        return self.records.get(record_id)

    def ids(self, query: ListQuery) -> list[str]:
        """Ids matching `query`, in its order (cached until the collection changes)."""
        with self.lock:
            cached = self._cache.get(query)
            if cached is not None:
                return cached
            result = self._compute(query)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[query] = result
            return result

    def _compute(self, q: ListQuery) -> list[str]:
        meta = self._meta
        date_field = self.collection.date_field
        rows = []
        for rid, record in self.records.items():
            if q.statuses is not None and record.get("status") not in q.statuses:
                continue
            if q.contact_type is not None and record.get("contact_type") != q.contact_type:
                continue
            if q.modified_since is not None:
                modified = meta[rid][1]
                if modified is None or modified < q.modified_since:
                    continue
            if date_field and (q.date_start or q.date_end or q.date_exact):
                day = record.get(date_field) or ""
                if not day or (q.date_start and day < q.date_start) or (q.date_end and day > q.date_end):
                    continue
                if q.date_exact and day != q.date_exact:
                    continue
            if q.warehouse_id is not None and not any(
                w.get("warehouse_id") == q.warehouse_id for w in record.get("warehouses") or ()
            ):
                continue
            rows.append(rid)
        column = q.sort_column
        if column == "last_modified_time":
            values = {rid: meta[rid][1] for rid in rows}
        elif column == "created_time":
            values = {rid: meta[rid][2] for rid in rows}
        elif column in _NUMERIC_SORT:
            values = {rid: _as_float(self.records[rid].get(column)) for rid in rows}
        else:
            values = {rid: _as_text(self.records[rid].get(column)) for rid in rows}

        def key(rid: str) -> tuple:
            value = values[rid]
            return (0, 0, meta[rid][0]) if value is None else (1, value, meta[rid][0])

        rows.sort(key=key, reverse=q.sort_order == "D")
        return rows


def _as_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _as_text(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value).casefold()


class Store:
    """Every collection's store, by collection name."""

    def __init__(self) -> None:
        self.collections: dict[str, CollectionStore] = {c.name: CollectionStore(c) for c in COLLECTIONS}

    def __getitem__(self, name: str) -> CollectionStore:
        return self.collections[name]

    def counts(self) -> dict[str, int]:
        return {name: len(store) for name, store in self.collections.items()}


def detail_view(collection: Collection, record: dict) -> dict:
    """The single-record GET shape (credit notes name their change time updated_time there)."""
    if collection.name == "creditnotes" and "last_modified_time" in record:
        view = dict(record)
        view["updated_time"] = view.pop("last_modified_time")
        return view
    return record


def list_row(collection: Collection, record: dict, warehouse_id: str | None = None) -> dict:
    """The abridged list row; with `warehouse_id` an item's stock figures are that warehouse's."""
    fields = collection.summary_fields
    if fields is None:
        return record
    row = {k: record[k] for k in fields if k in record}
    if warehouse_id is not None:
        for stock in record.get("warehouses") or ():
            if stock.get("warehouse_id") == warehouse_id:
                row["stock_on_hand"] = stock.get("warehouse_stock_on_hand", 0)
                row["available_stock"] = stock.get("warehouse_available_stock", 0)
                row["actual_available_stock"] = stock.get("warehouse_actual_available_stock", 0)
                break
    return row


_CHANGE_TIMES = ("last_modified_time", "updated_time")  # credit notes' GET names it updated_time


def version_shape(view: dict, style: str, in_list: bool) -> dict:
    """`view` (a list row or GET shape) with its times as `style` serves them (config.VERSION_STYLES).

    `timestamp`: as stored. `date`: the change time as a bare `YYYY-MM-DD` in the organization's zone (as
    Zoho's Inventory item list documents it). `none`: no created, change or update time at all (as some
    documented lists show). `list_only`: the list row has the change time, the GET has not."""
    if style == "timestamp" or (style == "list_only" and in_list):
        return view
    view = dict(view)
    if style == "date":
        for key in _CHANGE_TIMES:
            epoch = parse_ts(view.get(key))
            if epoch is not None:
                view[key] = format_ts(epoch)[:10]
    else:
        for key in (*_CHANGE_TIMES, "created_time") if style == "none" else _CHANGE_TIMES:
            view.pop(key, None)
    return view
