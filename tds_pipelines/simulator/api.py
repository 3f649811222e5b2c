"""The Zoho Books v3 / Inventory v1 API: routing, auth, organization, limits, faults, lists and GETs.

Order of checks on an API call: unknown URL (404 code 5, not counted) → method (405 code 37) → auth header
(401 code 14 missing/malformed, 401 code 57 invalid or expired token) → organization_id (400 code 6024
missing, 401 code 6041 not this user's) → limits (429 codes 1070/44/45, see limits.py) → fault → answer.
`GET /itemdetails?item_ids=` answers at most `itemdetails_max_ids` (100) ids a call (400 code 2 past it);
unknown ids are left out of the answer silently. Lists and GETs show each record's times in its entity's
version style (`SimulatorConfig.version_style`). A `mutate` fault changes the data right after the list
page it waits for has been answered (before the answer is sent, hence before the client's next call).
"""

from __future__ import annotations

import math
from urllib.parse import parse_qs

from tds_pipelines.simulator.endpoints import API_ROOTS, BY_PATH, ITEMDETAILS_PATH, Collection
from tds_pipelines.simulator.mutations import apply_mutation
from tds_pipelines.simulator.replies import Reply, encode, json_reply, zoho_error
from tds_pipelines.simulator.state import SimulatorState
from tds_pipelines.simulator.store import ListQuery, detail_view, list_row
from tds_pipelines.simulator.timestamps import parse_date, parse_ts

MAX_PER_PAGE = 200
_TEXT_SORT_DEFAULT_A = frozenset(
    {"name", "contact_name", "company_name", "first_name", "email", "warehouse_name", "sku"}
)
_503_PAGE = (
    b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
    b"<h1>503 Service Temporarily Unavailable</h1></center><hr><center>ZGS</center></body></html>"
)


class BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _invalid(name: str) -> BadRequest:
    return BadRequest(f"Invalid value passed for {name}")


def resolve(path: str) -> tuple[str, Collection | None, str | None, bool] | None:
    """(api, collection, record id, is itemdetails) for an API path, or None when it is not one."""
    for root, root_api in API_ROOTS.items():
        if path.startswith(root + "/"):
            api, rest = root_api, path[len(root) :].rstrip("/")
            break
    else:
        return None
    if rest == ITEMDETAILS_PATH:
        return api, BY_PATH["/items"], None, True
    coll = BY_PATH.get(rest)
    if coll is not None and api in coll.apis:
        return api, coll, None, False
    head, _, record_id = rest.rpartition("/")
    coll = BY_PATH.get(head)
    if coll is not None and api in coll.apis and coll.get_key and record_id:
        return api, coll, record_id, False
    return None


def handle(state: SimulatorState, method: str, path: str, raw_query: str, authorization: str | None) -> Reply:
    route = resolve(path)
    if route is None:
        reply = zoho_error(404, 5, "Invalid URL Passed")
        state.stats.answered("unknown", 404, False, 5)
        return reply
    api, coll, record_id, is_itemdetails = route
    prefix = path if record_id is None else path[: -len(record_id) - 1]
    params = {k: v[0] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
    org = None
    admitted = False
    try:
        reply = _pre_checks(state, method, params, authorization)
        if reply is None:
            org = params["organization_id"]
            admission = state.limits.admit(org)
            if admission.code:
                reply = zoho_error(429, admission.code, admission.message)
            else:
                admitted = True
                reply = _answer(state, coll, record_id, is_itemdetails, params, path)
        # Every answer on an API route carries the quota headers (of the organization named, else ours).
        reply.headers.update(state.limits.headers(org or state.config.organization_id))
    finally:
        if admitted:
            state.limits.release(org)
    state.stats.answered(prefix, reply.status, admitted, reply.code)
    return reply


def _pre_checks(state: SimulatorState, method: str, params: dict, authorization: str | None) -> Reply | None:
    if method != "GET":
        return zoho_error(405, 37, f"The HTTP method {method} is not allowed for the requested resource")
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme != "Zoho-oauthtoken" or not token:
        return zoho_error(401, 14, "Invalid value passed for Authorization header")
    if not state.tokens.is_valid(token):
        return zoho_error(401, 57, "You are not authorized to perform this operation")
    org = params.get("organization_id")
    cfg = state.config
    if not org:
        return zoho_error(
            400,
            6024,
            "Please send the organization_id: you belong to more than one organization.",
            error_info=[{"organization_id": cfg.organization_id, "name": "TDS Trading Co."}],
        )
    if org != cfg.organization_id:
        return zoho_error(401, 6041, f"This user is not associated with the CompanyID/CompanyName:{org}.")
    return None


def _answer(
    state: SimulatorState,
    coll: Collection,
    record_id: str | None,
    is_itemdetails: bool,
    params: dict,
    path: str,
) -> Reply:
    is_list = record_id is None and not is_itemdetails
    later_page = is_list and params.get("page", "1").isdigit() and int(params.get("page", "1")) > 1
    fault = state.faults.take(path, later_page)
    if fault is not None:
        state.stats.fault(fault.kind)
        if fault.kind == "500":
            return zoho_error(500, 1000, "Internal error")
        if fault.kind == "503":
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return Reply(503, _503_PAGE, "text/html", headers, code=None)
        if fault.kind == "timeout":
            state.stop_event.wait(fault.delay_seconds)
    served = None
    try:
        if is_itemdetails:
            reply = _itemdetails(state, params)
        elif record_id is not None:
            reply = _get(state, coll, record_id)
        else:
            reply, served = _list(state, coll, params, duplicate=fault is not None and fault.kind == "duplicate")
    except BadRequest as exc:
        return zoho_error(400, 2, exc.message)
    if served is not None:
        mutation = state.faults.take_mutation(path, _int_param(params, "page", 1))
        if mutation is not None:
            apply_mutation(state, coll, mutation, path, served)
    if fault is not None and fault.kind == "malformed":
        reply.body = reply.body[: max(1, len(reply.body) // 2)]
    return reply


def _get(state: SimulatorState, coll: Collection, record_id: str) -> Reply:
    record = state.store[coll.name].get(record_id)
    if record is None:
        return zoho_error(404, 1002, f"{coll.label} does not exist.")
    view = state.as_served(coll, record, detail_view(coll, record), in_list=False)
    body = encode({"code": 0, "message": "success", coll.get_key: view})
    return Reply(200, body, code=0)


def _itemdetails(state: SimulatorState, params: dict) -> Reply:
    raw = params.get("item_ids", "")
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids:
        raise BadRequest("Invalid value passed for item_ids")
    limit = state.config.itemdetails_max_ids
    if limit and len(ids) > limit:
        raise BadRequest(f"Invalid value passed for item_ids: at most {limit} ids a call")
    store = state.store["items"]
    records = [r for r in (store.get(i) for i in ids) if r is not None]
    items = [state.as_served(store.collection, r, detail_view(store.collection, r), in_list=False) for r in records]
    return json_reply(200, {"code": 0, "message": "success", "items": items})


def _int_param(params: dict, name: str, default: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise _invalid(name) from None


def _list(state: SimulatorState, coll: Collection, params: dict, duplicate: bool) -> tuple[Reply, list[str] | None]:
    """The list answer and the ids it served (None for a count-only `response_option=2` call)."""
    page = _int_param(params, "page", 1)
    if page < 1:
        raise _invalid("page")
    per_page = _int_param(params, "per_page", MAX_PER_PAGE)
    per_page = MAX_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
    query, applied_filter = _list_query(state, coll, params)
    ids = state.store[coll.name].ids(query)
    total = len(ids)
    context = {
        "page": page,
        "per_page": per_page,
        "has_more_page": page * per_page < total,
        "report_name": coll.report_name,
        "applied_filter": applied_filter,
        "sort_column": query.sort_column,
        "sort_order": query.sort_order,
        "search_criteria": [],
    }
    option = params.get("response_option")
    if option == "2":
        context.update(total=total, total_pages=math.ceil(total / per_page))
        return json_reply(200, {"code": 0, "message": "success", "page_context": context}), None
    if option == "1":
        context.update(total=total, total_pages=math.ceil(total / per_page))
    start = (page - 1) * per_page
    chunk = ids[start : start + per_page]
    if duplicate and 0 < start <= total:
        chunk = [ids[start - 1], *chunk]
    store = state.store[coll.name]
    records = [r for r in (store.get(rid) for rid in chunk) if r is not None]
    rows = [state.as_served(coll, r, list_row(coll, r, query.warehouse_id), in_list=True) for r in records]
    body = {"code": 0, "message": "success", coll.list_key: rows, "page_context": context}
    served = [str(r[coll.id_field]) for r in records]
    return json_reply(200, body), served


def _list_query(state: SimulatorState, coll: Collection, params: dict) -> tuple[ListQuery, str]:
    filter_by = params.get("filter_by") or coll.default_filter
    statuses = None
    if coll.statuses and filter_by.startswith("Status.") and filter_by != "Status.All":
        if filter_by not in coll.statuses:
            raise _invalid("filter_by")
        statuses = frozenset(coll.statuses[filter_by])
    column = params.get("sort_column") or coll.default_sort[0]
    if column not in coll.sort_columns and column != coll.default_sort[0]:
        raise _invalid("sort_column")
    order = params.get("sort_order")
    if order is None or order == "":
        if column == coll.default_sort[0]:
            order = coll.default_sort[1]
        else:
            order = "A" if column in _TEXT_SORT_DEFAULT_A else "D"
    if order not in ("A", "D"):
        raise _invalid("sort_order")
    modified_since = None
    modified_filter = coll.modified_filter and (coll.name != "creditnotes" or state.config.creditnotes_modified_filter)
    if modified_filter and params.get("last_modified_time"):
        modified_since = parse_ts(params["last_modified_time"])
        if modified_since is None:
            raise _invalid("last_modified_time")
    dates = {}
    if coll.date_field:
        for name in ("date_start", "date_end", "date"):
            value = params.get(name)
            if value:
                if parse_date(value) is None:
                    raise _invalid(name)
                dates[name] = value
    contact_type = None
    if coll.name == "contacts" and params.get("contact_type"):
        contact_type = params["contact_type"]
        if contact_type not in ("customer", "vendor"):
            raise _invalid("contact_type")
    warehouse_id = None
    if coll.name == "items" and params.get("warehouse_id"):
        warehouse_id = params["warehouse_id"]
        if state.store["warehouses"].get(warehouse_id) is None:
            raise _invalid("warehouse_id")
    query = ListQuery(
        sort_column=column,
        sort_order=order,
        statuses=statuses,
        contact_type=contact_type,
        modified_since=modified_since,
        date_start=dates.get("date_start"),
        date_end=dates.get("date_end"),
        date_exact=dates.get("date"),
        warehouse_id=warehouse_id,
    )
    return query, filter_by
