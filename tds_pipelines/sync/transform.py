"""Zoho record -> ERP rows, driven only by the entity registry (nothing entity-specific here).

Zoho's quirks handled here (docs: zoho-api.md §2):
- numbers may arrive as ``""`` or ``" "``; IDs as digit strings or (in the docs' samples) JSON numbers;
- timestamps carry offsets without a colon (``2013-11-18T02:02:51-0800``); they are stored as UTC instants;
- some strings are ``" "``.

Decisions:
- A blank value (None, ``""``, whitespace only) is NULL in a typed column, whatever the type. The raw record
  keeps it as Zoho sent it.
- A typed column whose value cannot be parsed (``"5%"`` in a numeric, ``"soon"`` in a date) becomes NULL and
  a warning on the row; the record is still written, since ``raw`` holds the original.
- What the record cannot be stored without raises `RecordError` naming entity, record id and field: a missing
  id, an unparseable version (the write guard needs it), a number too large for NUMERIC(20, 6) or BIGINT
  (PostgreSQL would reject the whole batch), a child entry that is not an object.
- NUL characters are removed from every string (PostgreSQL text and jsonb cannot hold U+0000) and lone
  surrogates (``"\\ud800"`` is valid JSON, not UTF-8) become U+FFFD: such a record is stored, not lost.
- The version of a record fetched for a list entry falls back to the entry's: a GET without
  ``last_modified_time`` must not look older than the listing that made TDS fetch it.
- Text columns keep the string as sent (no trimming) except that a blank string is NULL.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from tds_pipelines.entities import ITEM_STOCK_COLUMNS, Col, EntitySpec
from tds_pipelines.erp.db import as_utc, clean_json, clean_text

# NUMERIC(20, 6): at most 14 digits before the point.
NUMERIC_LIMIT = Decimal(10) ** 14
BIGINT_LIMIT = 2**63

_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})$")
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class RecordError(ValueError):
    """A record that cannot be stored; the caller keeps it with this reason and goes on."""

    def __init__(self, entity: str, zoho_id: str | None, field: str | None, reason: str) -> None:
        self.entity = entity
        self.zoho_id = zoho_id
        self.field = field
        self.reason = reason
        where = f" field {field!r}" if field else ""
        super().__init__(f"{entity} record {zoho_id or '<no id>'}:{where} {reason}")


@dataclass
class EntityRow:
    """One record ready for `erp.upsert.upsert_rows`.

    `values` holds every column of the entity table. `children` maps a child table to its rows; a child
    table is present only when the record carried that field (a record without ``line_items`` leaves the
    stored line items alone, one with ``line_items: []`` clears them)."""

    zoho_id: str
    values: dict[str, Any]
    children: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def version(self) -> datetime | None:
        return self.values.get("zoho_last_modified_time")

    @property
    def synced_at(self) -> datetime:
        return self.values["synced_at"]


class _Unparseable(ValueError):
    """A value that is not what its column expects (becomes NULL and a warning, or a RecordError)."""


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_timestamp(value: Any) -> datetime | None:
    """A Zoho timestamp as an aware UTC datetime; blank -> None; naive -> taken as UTC.

    Accepts ``2013-11-18T02:02:51-0800``, ``...-08:00``, ``...Z``, a space instead of ``T``, fractions of a
    second, a bare date (midnight UTC) and datetime objects. Raises ValueError on anything else."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:  # Python 3.11 reads Zoho's usual forms as they are; the rewrite below is for the others
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = _timestamp_text(value)
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {value!r}") from None


def _timestamp_text(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    else:
        text = _OFFSET.sub(r"\1\2:\3", text) if "T" in text or " " in text else text
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a timestamp: {value!r}") from None


def parse_date(value: Any) -> date | None:
    """A ``YYYY-MM-DD`` date (a timestamp gives its own calendar date); blank -> None; else ValueError."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date: {value!r}") from None
    raise ValueError(f"not a date: {value!r}")


def parse_numeric(value: Any) -> Decimal | None:
    """A number as an exact Decimal; blank or not a finite number (``"5%"``, ``"N/A"``, NaN) -> None.

    Floats go through their shortest repr, so 40.6 is Decimal('40.6'), not its binary expansion."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def parse_bool(value: Any) -> bool | None:
    """true/false, 1/0, "yes"/"no" (any case) -> bool; blank or anything else -> None."""
    if isinstance(value, bool):
        return value
    if _blank(value):
        return None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def parse_text(value: Any) -> str | None:
    """Text as sent; blank -> None; numbers (IDs as JSON numbers) -> their digits; objects -> JSON."""
    if _blank(value):
        return None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return str(value)
    return clean_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _id(value: Any) -> str | None:
    """An ID as text: digit strings stay, JSON numbers become their digits, blank -> None."""
    if _blank(value) or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else None
    if isinstance(value, int | str | Decimal):
        return clean_text(str(value).strip())
    return None


def _as_text(value: Any) -> str | None:
    if value.__class__ is str:  # the usual case first: no NUL, no surrogate in ASCII
        if not value or value.isspace():
            return None
        return value if value.isascii() and "\x00" not in value else clean_text(value)
    return parse_text(value)


def _as_numeric(value: Any) -> Decimal | None:
    if value.__class__ is int:
        number = Decimal(value)
    else:
        if _blank(value):
            return None
        number = parse_numeric(value)
        if number is None:
            raise _Unparseable(f"not a number: {value!r}")
    if abs(number) >= NUMERIC_LIMIT:
        raise OverflowError(f"{number} does not fit NUMERIC(20, 6)")
    return number


def _as_int(value: Any) -> int | None:
    if _blank(value):
        return None
    number = parse_numeric(value)
    if number is None or number != number.to_integral_value():
        raise _Unparseable(f"not an integer: {value!r}")
    if abs(number) >= BIGINT_LIMIT:
        raise OverflowError(f"{number} does not fit BIGINT")
    return int(number)


def _as_bool(value: Any) -> bool | None:
    if _blank(value):
        return None
    flag = parse_bool(value)
    if flag is None:
        raise _Unparseable(f"not a boolean: {value!r}")
    return flag


def _parsing(parse):
    """`parse` with its ValueError as _Unparseable (-> NULL + warning)."""

    def parsed(value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise _Unparseable(str(exc)) from None

    return parsed


# Each column type's reader: the value, or _Unparseable (-> NULL + warning), or OverflowError (-> RecordError).
_READERS = {
    "text": _as_text,
    "numeric": _as_numeric,
    "int": _as_int,
    "bool": _as_bool,
    "date": _parsing(parse_date),
    "timestamp": _parsing(parse_timestamp),
}


@cache
def _readers(cols: tuple[Col, ...]) -> tuple[tuple[str, str, Any], ...]:
    """(column, record field, reader) for each column: looked up once per registry row, not per value."""
    return tuple((col.name, col.field, _READERS[col.type]) for col in cols)


def _typed_columns(
    cols: tuple[Col, ...], record: dict, entity: str, zoho_id: str, where: str, warnings: list[str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, source, read in _readers(cols):
        value = record.get(source)
        try:
            values[name] = None if value is None else read(value)
        except _Unparseable as exc:
            values[name] = None
            warnings.append(f"{where}{source}: {exc}; stored NULL")
        except OverflowError as exc:
            raise RecordError(entity, zoho_id, where + source, str(exc)) from None
    return values


def record_id(spec: EntitySpec, record: dict) -> str:
    """The record's Zoho id as text; RecordError when it is missing."""
    zoho_id = _id(record.get(spec.id_field)) if isinstance(record, dict) else None
    if zoho_id is None:
        raise RecordError(spec.name, None, spec.id_field, "missing id")
    return zoho_id


def record_version(spec: EntitySpec, record: dict, fallback: dict | None = None) -> datetime | None:
    """The first of `spec.version_fields` present (non-blank) in `record`, else in `fallback` (the list
    entry a GET was made for), as a UTC instant; None when there is none.

    A present but unparseable version raises RecordError: the write guard cannot order the record."""
    for name in spec.version_fields:
        value = record.get(name)
        if _blank(value) and fallback is not None:
            value = fallback.get(name)
        if _blank(value):
            continue
        try:
            return parse_timestamp(value)
        except ValueError as exc:
            raise RecordError(spec.name, _id(record.get(spec.id_field)), name, str(exc)) from None
    return None


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text as is: the same record always gives the same string."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def summary_hash(record: dict) -> str:
    """sha256 (hex) of the record's canonical JSON: the change test for records without a version."""
    return _digest(canonical_json(record))


def _digest(text: str) -> str:
    # surrogatepass: a lone surrogate is hashed, not an error (the same bytes as UTF-8 for any other text).
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _storable(text: str) -> bool:
    """Whether a canonical JSON text holds only what PostgreSQL stores as is (no NUL, no infinity or NaN, no
    lone surrogate; a string merely spelling Infinity costs a needless clean, nothing more)."""
    return not any(token in text for token in ("\\u0000", "Infinity", "NaN")) and clean_text(text) is text


def to_row(
    spec: EntitySpec, record: dict, synced_at: datetime, summary: dict | None = None, hashed: bool = True
) -> EntityRow:
    """The entity-table row and child rows of `record` (a full record: GET, webhook, or the list entry).

    `summary` is the list entry the record was fetched for: its hash is stored for the next run's change
    test (without it, the record's own hash is stored). `synced_at` is when this version arrived (the sync's
    start or the webhook's receipt): the tie-breaker for records without a version. `hashed` False: no
    summary_hash (a webhook's whole record), and ``raw`` is left for the writer's encoder to clean."""
    if not isinstance(record, dict):
        raise RecordError(spec.name, None, None, f"not a JSON object: {type(record).__name__}")
    zoho_id = record_id(spec, record)
    digest = None
    if hashed:
        text = canonical_json(record)
        if not _storable(text):
            record = clean_json(record)
        digest = _digest(text) if summary is None or summary is record else summary_hash(summary)
    warnings: list[str] = []
    values: dict[str, Any] = {
        "zoho_id": zoho_id,
        "zoho_last_modified_time": record_version(spec, record, fallback=summary),
        "summary_hash": digest,
        "deleted_in_zoho_at": None,
        "synced_at": as_utc(synced_at),
    }
    values.update(_typed_columns(spec.columns, record, spec.name, zoho_id, "", warnings))
    values["raw"] = record
    children: dict[str, list[dict[str, Any]]] = {}
    for child in spec.children:
        entries = record.get(child.field)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise RecordError(spec.name, zoho_id, child.field, f"expected a list, got {type(entries).__name__}")
        rows = []
        for position, entry in enumerate(entries, start=1):
            where = f"{child.field}[{position}]."
            if not isinstance(entry, dict):
                raise RecordError(spec.name, zoho_id, where.rstrip("."), "child entry is not a JSON object")
            row = {
                "parent_zoho_id": zoho_id,
                "position": position,
                "zoho_id": _id(entry.get(child.id_field)) if child.id_field else None,
            }
            row.update(_typed_columns(child.columns, entry, spec.name, zoho_id, where, warnings))
            row["raw"] = entry
            rows.append(row)
        children[child.table] = rows
    return EntityRow(zoho_id=zoho_id, values=values, children=children, warnings=warnings)


# Newer organizations report stock per location (location_*) instead of per warehouse (warehouse_*).
_STOCK_LISTS = (("warehouses", "warehouse_"), ("locations", "location_"))


def item_stock_rows(item_record: dict, synced_at: datetime) -> list[EntityRow]:
    """Rows of ``zoho_item_stock`` from an item detail's ``warehouses[]`` (or ``locations[]``).

    zoho_id is ``"<item_id>:<warehouse_id>"``. Stock rows carry no version on purpose: a stock movement
    may not bump the item's last_modified_time, so the latest observation (`synced_at`) wins."""
    item_id = _id(item_record.get("item_id")) if isinstance(item_record, dict) else None
    if item_id is None:
        raise RecordError("item_stock", None, "item_id", "missing id")
    rows = []
    for key, prefix in _STOCK_LISTS:
        for entry in item_record.get(key) or []:
            if not isinstance(entry, dict):
                raise RecordError("item_stock", item_id, key, "entry is not a JSON object")
            # Read location_* fields under their warehouse_* names.
            fields = {"warehouse_" + k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in entry.items()}
            rows.append(_stock_row(item_id, fields, entry, synced_at))
    return rows


def item_stock_row_from_listing(
    item_summary: dict, warehouse_id: str, synced_at: datetime, warehouse_name: str | None = None
) -> EntityRow:
    """A ``zoho_item_stock`` row from one entry of ``/items?warehouse_id=`` (stock at top level)."""
    item_id = _id(item_summary.get("item_id"))
    if item_id is None:
        raise RecordError("item_stock", None, "item_id", "missing id")
    fields = {
        "warehouse_id": warehouse_id,
        "warehouse_name": warehouse_name,
        "warehouse_stock_on_hand": item_summary.get("stock_on_hand"),
        "warehouse_available_stock": item_summary.get("available_stock"),
        "warehouse_actual_available_stock": item_summary.get("actual_available_stock"),
        "warehouse_committed_stock": item_summary.get("committed_stock"),
        "warehouse_available_for_sale_stock": item_summary.get("available_for_sale_stock"),
    }
    raw = {
        "item_id": item_id,
        "warehouse_id": warehouse_id,
        "source": "warehouse_listing",
        "item": item_summary,
    }
    return _stock_row(item_id, fields, raw, synced_at)


def _stock_row(item_id: str, fields: dict, raw: dict, synced_at: datetime) -> EntityRow:
    warehouse_id = _id(fields.get("warehouse_id"))
    zoho_id = f"{item_id}:{warehouse_id}"
    if warehouse_id is None:
        raise RecordError("item_stock", item_id, "warehouse_id", "missing warehouse id")
    fields = {**fields, "item_id": item_id, "warehouse_id": warehouse_id}
    text = canonical_json(raw)
    raw = raw if _storable(text) else clean_json(raw)
    warnings: list[str] = []
    values: dict[str, Any] = {
        "zoho_id": zoho_id,
        "zoho_last_modified_time": None,
        "summary_hash": _digest(text),
        "deleted_in_zoho_at": None,
        "synced_at": as_utc(synced_at),
    }
    values.update(_typed_columns(ITEM_STOCK_COLUMNS, fields, "item_stock", zoho_id, "", warnings))
    values["raw"] = raw
    return EntityRow(zoho_id=zoho_id, values=values, warnings=warnings)


__all__ = [
    "EntityRow",
    "RecordError",
    "canonical_json",
    "item_stock_row_from_listing",
    "item_stock_rows",
    "parse_bool",
    "parse_date",
    "parse_numeric",
    "parse_text",
    "parse_timestamp",
    "record_id",
    "record_version",
    "summary_hash",
    "to_row",
]
