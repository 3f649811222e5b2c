"""The `mutate` fault: a Zoho user changes the data between two pages of a listing.

Zoho pages by offset, so a record that leaves the part already served (deleted, or renamed to sort later)
moves every later record one place up: the first record of the next page is never served. A record that
enters it (inserted, sorting first) moves them down: a record is served twice. Each change goes through
the admin routes' own operations, so times move and webhooks fire as they would for `PUT`/`DELETE
/admin/<entity>/<id>`. The record changed is `zoho_id`, else the first record of the page just served:

- `delete` removes it;
- `rename` prefixes its name with `LAST_PREFIX` and bumps its last_modified_time;
- `edit` bumps its last_modified_time and appends " (edited)" to its description (or notes);
- `insert` adds a copy of it, created now, named with `FIRST_PREFIX`, with a new id (`zoho_id` when given:
  for `insert` it names the new record) and new ids for its child rows (line items, contact persons, ...).

`GET /admin/faults` lists what each applied mutation did under "applied":
`{"kind": "mutate", "action", "path", "after_page", "entity", "zoho_id", "name" (rename, insert)}`, or
`"error"` instead of entity/zoho_id when it could not be done (no such record, nothing to rename).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from tds_pipelines.simulator.endpoints import Collection, admin_entity_name

if TYPE_CHECKING:
    from tds_pipelines.simulator.faults import ArmedFault
    from tds_pipelines.simulator.state import SimulatorState

# Text sorts by code point: Arabic letters come after Latin ones, and yeh is the last Arabic letter, so this
# prefix sorts a name after every Latin and Arabic name (a plain "zzz " would still sort before Arabic ones).
LAST_PREFIX = "ييي "
FIRST_PREFIX = "AAA "
_NAME_FIELDS = {
    "items": "name",
    "contacts": "contact_name",
    "pricebooks": "name",
    "users": "name",
    "warehouses": "warehouse_name",
}
_EDIT_FIELDS = ("description", "notes")
_CHILD_IDS = ("line_item_id", "contact_person_id", "invoice_payment_id", "pricebook_item_id")


def apply_mutation(state: SimulatorState, coll: Collection, fault: ArmedFault, path: str, served: list[str]) -> dict:
    """Change `coll`'s data as `fault` says, right after a list page of `path` served the ids `served`;
    returns what was done (also recorded for `GET /admin/faults`)."""
    entry: dict = {"kind": "mutate", "action": fault.action, "path": path, "after_page": fault.after_page}
    try:
        entry.update(_ACTIONS[fault.action](state, coll, fault.zoho_id, served))
    except (LookupError, ValueError) as exc:
        entry["error"] = str(exc.args[0] if exc.args else exc)
    state.faults.record_applied(entry)
    state.stats.fault("mutate")
    return entry


def _target(state: SimulatorState, coll: Collection, zoho_id: str | None, served: list[str]) -> tuple[str, str, dict]:
    """(TDS entity, id, record) of the record to change."""
    record_id = zoho_id or (served[0] if served else "")
    record = state.store[coll.name].get(record_id)
    if record is None:
        raise LookupError(f"no {coll.label} {record_id or '(the page was empty)'} to change")
    return _entity(coll, record), record_id, record


def _entity(coll: Collection, record: dict) -> str:
    entity = admin_entity_name(coll.name, record)
    if entity is None:
        raise LookupError(f"{coll.label} record of no TDS entity")
    return entity


def _name_field(coll: Collection) -> str:
    field = _NAME_FIELDS.get(coll.name)
    if field is None:
        raise ValueError(f"{coll.label} records have no name to rename")
    return field


def _delete(state: SimulatorState, coll: Collection, zoho_id: str | None, served: list[str]) -> dict:
    entity, record_id, _ = _target(state, coll, zoho_id, served)
    state.delete_record(entity, record_id)
    return {"entity": entity, "zoho_id": record_id}


def _rename(state: SimulatorState, coll: Collection, zoho_id: str | None, served: list[str]) -> dict:
    entity, record_id, record = _target(state, coll, zoho_id, served)
    field = _name_field(coll)
    name = LAST_PREFIX + str(record.get(field) or "")
    state.patch_record(entity, record_id, {field: name})
    return {"entity": entity, "zoho_id": record_id, "name": name}


def _edit(state: SimulatorState, coll: Collection, zoho_id: str | None, served: list[str]) -> dict:
    entity, record_id, record = _target(state, coll, zoho_id, served)
    field = next((f for f in _EDIT_FIELDS if f in record), _EDIT_FIELDS[0])
    state.patch_record(entity, record_id, {field: f"{record.get(field) or ''} (edited)".strip()})
    return {"entity": entity, "zoho_id": record_id}


def _insert(state: SimulatorState, coll: Collection, zoho_id: str | None, served: list[str]) -> dict:
    entity, _, template = _target(state, coll, None, served)
    store = state.store[coll.name]
    with store.lock:
        new_id = zoho_id or str(max(int(i) for i in store.records if i.isdigit()) + 1)
    if store.get(new_id) is not None:
        raise ValueError(f"{coll.label} {new_id} exists already")
    record = copy.deepcopy(template)
    for key in ("created_time", "last_modified_time", "updated_time"):
        record.pop(key, None)  # put_record stamps the new record as created now
    # Child rows have ids of their own, unique at Zoho: a copy must not share them.
    children = (row for rows in record.values() if isinstance(rows, list) for row in rows if isinstance(row, dict))
    for k, row in enumerate(children):
        for key in _CHILD_IDS:
            if key in row:
                row[key] = f"{new_id}{k:03d}"
    out = {"entity": entity, "zoho_id": new_id}
    field = _NAME_FIELDS.get(coll.name)
    if field is not None:
        record[field] = out["name"] = FIRST_PREFIX + str(record.get(field) or "")
    state.put_record(entity, new_id, record)
    return out


_ACTIONS = {"delete": _delete, "rename": _rename, "edit": _edit, "insert": _insert}
