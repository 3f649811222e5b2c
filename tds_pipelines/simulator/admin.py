"""Admin routes: no auth, never limited, never counted.

- `GET /admin/stats` (with `webhooks_pending`), `POST /admin/reset-stats`, `POST /admin/reset-limits` (fresh
  minute and day, clears the refresh throttle)
- `POST /admin/limits` `{"rate_limit_per_minute"?, "daily_limit"?, "concurrency_limit"?, "fault_rate"?}`
- `POST /admin/faults` `{"kind": "500|503|timeout|malformed|duplicate|mutate", "count": 1, "path_contains": "",
  "delay_seconds": 35}`; a `503` also takes `"retry_after": N` (sends `Retry-After: N`); a `mutate` takes
  `"action": "delete|rename|insert|edit", "after_page": 1, "zoho_id": null` (mutations.py). Answers
  `{"armed": {...}}`. `GET /admin/faults`: `{"armed": [...], "applied": [...]}` (applied: what each
  mutation did, see mutations.py); `DELETE /admin/faults` disarms all and forgets the applied list
- `POST /admin/expire-tokens`: every access token issued so far stops working now
- `GET /admin/webhooks`: the webhook settings, `pending` (deliveries not final yet: 0 when every change so
  far is delivered or given up), `held` (in a reorder window), `sent`/`failed` (attempts), `given_up`
  (deliveries) and `deliveries` (the latest attempts, oldest first: delivery, entity, id, event, status, ok,
  attempt, duplicate, final, retry_in?, error?). `POST /admin/webhooks` `{"duplicate_rate"?, "reorder_window"?,
  "retries"?, "retry_delay_seconds"?, ...}` (webhooks.SETTINGS) changes them from now on and answers the same;
  409 when the simulator has no webhook URL
- `GET /admin/<entity>` (ids), `GET|PUT|PATCH|DELETE /admin/<entity>/<id>` with TDS entity names (PUT
  creates or replaces with the body, bare or under its singular key; PATCH merges top-level fields)
"""

from __future__ import annotations

import json

from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.replies import Reply, json_reply
from tds_pipelines.simulator.state import SimulatorState, UnknownEntity
from tds_pipelines.simulator.webhooks import SETTINGS as WEBHOOK_SETTINGS
from tds_pipelines.simulator.webhooks import WebhookSender


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
        if head == "webhooks" and method in ("GET", "POST"):
            if method == "POST":
                if state.webhooks is None:
                    return _error(409, "webhooks are off: start the simulator with a webhook URL")
                set_webhooks(state.webhooks, state.config, payload)
            return json_reply(200, webhooks(state))
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
        webhooks_pending=state.webhooks.pending if state.webhooks is not None else 0,
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


def webhooks(state: SimulatorState) -> dict:
    """`GET /admin/webhooks`: settings, what is still to do, and the latest attempts."""
    if state.webhooks is not None:
        out = {"enabled": True, **state.webhooks.status()}
    else:
        settings = {name: getattr(state.config, field) for name, (field, *_) in WEBHOOK_SETTINGS.items()}
        out = {"enabled": False, "url": None, **settings, "pending": 0, "held": 0}
    stats = state.stats.snapshot()
    out.update(
        sent=stats["webhooks_sent"],
        failed=stats["webhooks_failed"],
        given_up=stats["webhooks_given_up"],
        deliveries=stats["webhook_deliveries"],
    )
    return out


def set_webhooks(sender: WebhookSender, config: SimulatorConfig, payload: object) -> None:
    """`POST /admin/webhooks`: change the sender's settings (all or none), and the config's to match."""
    if not isinstance(payload, dict) or not payload:
        raise ValueError(f"the body must be a JSON object of settings among {', '.join(WEBHOOK_SETTINGS)}")
    for name, value in sender.configure(payload).items():
        setattr(config, WEBHOOK_SETTINGS[name][0], value)
