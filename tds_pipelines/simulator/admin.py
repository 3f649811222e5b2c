"""Admin routes: no auth, never limited, never counted.

- `GET /admin/stats`, `POST /admin/reset-stats`, `POST /admin/reset-limits` (fresh minute and day, clears the
  refresh throttle)
- `POST /admin/limits` `{"rate_limit_per_minute"?, "daily_limit"?, "concurrency_limit"?, "fault_rate"?}`
- `POST /admin/faults` `{"kind": "500|503|timeout|malformed|duplicate|mutate", "count": 1, "path_contains": "",
  "delay_seconds": 35}`; a `503` also takes `"retry_after": N` (sends `Retry-After: N`); a `mutate` takes
  `"action": "delete|rename|insert|edit", "after_page": 1, "zoho_id": null` (mutations.py). Answers
  `{"armed": {...}}`. `GET /admin/faults`: `{"armed": [...], "applied": [...]}` (applied: what each
  mutation did, see mutations.py); `DELETE /admin/faults` disarms all and forgets the applied list
- `POST /admin/expire-tokens`: every access token issued so far stops working now
- `GET /admin/<entity>` (ids), `GET|PUT|PATCH|DELETE /admin/<entity>/<id>` with TDS entity names (PUT
  creates or replaces with the body, bare or under its singular key; PATCH merges top-level fields)
"""

from __future__ import annotations

import json

from tds_pipelines.simulator.replies import Reply, json_reply
from tds_pipelines.simulator.state import SimulatorState, UnknownEntity


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


def handle(state: SimulatorState, method: str, path: str, body: bytes) -> Reply:
    parts = [p for p in path.split("/") if p][1:]  # drop "admin"
    try:
        payload = json.loads(body) if body.strip() else None
    except ValueError:
        return _error(400, "the body is not JSON")
    try:
        return _route(state, method, parts, payload)
    except UnknownEntity as exc:
        return _error(404, exc.args[0])
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))


def _route(state: SimulatorState, method: str, parts: list[str], payload: object) -> Reply:
    head = parts[0] if parts else ""
    if len(parts) == 1:
        if head == "stats" and method == "GET":
            return json_reply(200, stats(state))
        if head == "reset-stats" and method == "POST":
            state.stats.reset()
            state.limits.reset_peaks()
            return json_reply(200, {"ok": True})
        if head == "reset-limits" and method == "POST":
            state.limits.reset_usage()
            state.tokens.throttle.reset()
            return json_reply(200, {"ok": True})
        if head == "limits" and method == "POST":
            return json_reply(200, set_limits(state, payload or {}))
        if head == "expire-tokens" and method == "POST":
            return json_reply(200, {"expired": state.tokens.expire_all()})
        if head == "faults":
            if method == "POST":
                fault = state.faults.arm(payload if isinstance(payload, dict) else {})
                return json_reply(200, {"armed": fault.as_json()})
            if method == "GET":
                return json_reply(200, {"armed": state.faults.armed(), "applied": state.faults.applied()})
            if method == "DELETE":
                state.faults.clear()
                return json_reply(200, {"armed": [], "applied": []})
        if method == "GET":
            ids = state.entity_ids(head)
            return json_reply(200, {"entity": head, "count": len(ids), "ids": ids})
    if len(parts) == 2:
        entity, record_id = parts
        if method == "GET":
            record = state.get_record(entity, record_id)
            return json_reply(200, {"record": record}) if record else _error(404, f"{entity} {record_id} not found")
        if method == "PUT":
            return json_reply(200, {"record": state.put_record(entity, record_id, payload)})
        if method == "PATCH":
            record = state.patch_record(entity, record_id, payload)
            return json_reply(200, {"record": record}) if record else _error(404, f"{entity} {record_id} not found")
        if method == "DELETE":
            record = state.delete_record(entity, record_id)
            return json_reply(200, {"deleted": record_id}) if record else _error(404, f"{entity} {record_id} not found")
    return _error(404, "unknown admin route")


def stats(state: SimulatorState) -> dict:
    out = state.stats.snapshot()
    limits = state.limits.snapshot()
    out.update(
        peak_per_minute_window=state.limits.peak_window,
        peak_concurrency=state.limits.peak_in_flight,
        in_flight=limits["in_flight"],
        limits=limits,
        tokens_issued_total=state.tokens.issued,
        faults_armed=state.faults.armed(),
        records=state.store.counts(),
    )
    return out


def set_limits(state: SimulatorState, payload: object) -> dict:
    if not isinstance(payload, dict):
        raise ValueError("the body must be a JSON object")
    cfg, limits = state.config, state.limits
    for key in ("rate_limit_per_minute", "daily_limit", "concurrency_limit"):
        if key in payload:
            value = int(payload[key])
            if value < 0:
                raise ValueError(f"{key} must be 0 (unlimited) or more")
            setattr(cfg, key, value)
    if "fault_rate" in payload:
        rate = float(payload["fault_rate"])
        if not 0 <= rate <= 1:
            raise ValueError("fault_rate must be within 0..1")
        cfg.fault_rate = state.faults.rate = rate
    limits.per_minute, limits.daily, limits.concurrency = (
        cfg.rate_limit_per_minute,
        cfg.daily_limit,
        cfg.concurrency_limit,
    )
    return {
        "rate_limit_per_minute": cfg.rate_limit_per_minute,
        "daily_limit": cfg.daily_limit,
        "concurrency_limit": cfg.concurrency_limit,
        "fault_rate": cfg.fault_rate,
    }
