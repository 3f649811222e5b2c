"""One simulator's whole state: data, limits, tokens, faults, stats, webhooks; data changes as a Zoho user
would make them (admin create/replace/delete, `mutate` faults: they bump `last_modified_time` and fire
webhooks, which the sender may duplicate, reorder and retry as configured: webhooks.py); and how the API
serves a record (`as_served`: the entity's version style)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tds_pipelines.simulator.auth import TokenIssuer
from tds_pipelines.simulator.config import VERSION_STYLES, SimulatorConfig
from tds_pipelines.simulator.data import generate
from tds_pipelines.simulator.endpoints import ADMIN_ENTITIES, BY_NAME, AdminEntity, Collection, admin_entity_name
from tds_pipelines.simulator.faults import FaultPlan
from tds_pipelines.simulator.limits import ApiLimits
from tds_pipelines.simulator.stats import Stats
from tds_pipelines.simulator.store import Store, detail_view, version_shape
from tds_pipelines.simulator.timestamps import now_ts
from tds_pipelines.simulator.webhooks import SETTINGS as WEBHOOK_SETTINGS
from tds_pipelines.simulator.webhooks import WebhookSender


class UnknownEntity(KeyError):
    pass


def load_fixtures(directory: Path | str) -> dict[str, list[dict]]:
    """`DIR/<entity>.json` for every TDS entity present: a JSON list of full records (or an object holding
    that list under one key)."""
    found: dict[str, list[dict]] = {}
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"fixtures directory {root} does not exist")
    for name, entity in ADMIN_ENTITIES.items():
        path = root / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise ValueError(f"{path}: expected a JSON list of records")
            data = lists[0]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{path}: expected a JSON list of records")
        id_field = BY_NAME[entity.collection].id_field
        records = []
        for index, record in enumerate(data):
            if not record.get(id_field):
                raise ValueError(f"{path}: record #{index} has no {id_field}")
            record = {**record, id_field: str(record[id_field])}
            if entity.contact_type:
                record["contact_type"] = entity.contact_type
            records.append(record)
        found[name] = records
    return found


class SimulatorState:
    def __init__(self, config: SimulatorConfig) -> None:
        for name, style in config.version_style.items():
            if name not in ADMIN_ENTITIES or style not in VERSION_STYLES:
                raise ValueError(f"version_style {name}={style}: expected a TDS entity = {'|'.join(VERSION_STYLES)}")
        self.config = config
        self.stop_event = threading.Event()
        self.store = Store()
        self.stats = Stats()
        self.limits = ApiLimits(config.rate_limit_per_minute, config.daily_limit, config.concurrency_limit)
        self.tokens = TokenIssuer(config)
        self.faults = FaultPlan(
            config.fault_rate,
            config.fault_seed,
            config.max_timeout_fault_seconds,
            tuple(config.fault_kinds),
            config.random_timeout_seconds,
        )
        self.webhooks = (
            WebhookSender(
                config.webhook_url,
                config.webhook_token,
                config.webhook_secret,
                config.webhook_timeout_seconds,
                self.stats.webhook,
                {name: getattr(config, field) for name, (field, *_) in WEBHOOK_SETTINGS.items()},
                config.seed if config.webhook_seed is None else config.webhook_seed,
            )
            if config.webhook_url
            else None
        )
        loaded = load_fixtures(config.fixtures_dir) if config.fixtures_dir else {}
        for name, records in generate(config, loaded).items():
            self.store[ADMIN_ENTITIES[name].collection].load(records)

    def as_served(self, coll: Collection, record: dict, view: dict, in_list: bool) -> dict:
        """`view` of `record` (list row or GET shape) as the API serves it: in its entity's version style."""
        styles = self.config.version_style
        style = styles.get(admin_entity_name(coll.name, record) or "", "timestamp") if styles else "timestamp"
        return version_shape(view, style, in_list)

    # ---- admin data changes --------------------------------------------------------------------------
    @staticmethod
    def entity(name: str) -> tuple[AdminEntity, Collection]:
        entity = ADMIN_ENTITIES.get(name)
        if entity is None:
            raise UnknownEntity(f"unknown entity {name!r}; known: {', '.join(ADMIN_ENTITIES)}")
        return entity, BY_NAME[entity.collection]

    def get_record(self, name: str, record_id: str) -> dict | None:
        entity, coll = self.entity(name)
        record = self.store[coll.name].get(record_id)
        if record is None or (entity.contact_type and record.get("contact_type") != entity.contact_type):
            return None
        return detail_view(coll, record)

    def put_record(self, name: str, record_id: str, body: object) -> dict:
        """Create or replace a record as a Zoho user saving it would: the id is the URL's, created_time is
        kept, last_modified_time becomes now (for kinds that carry it). Returns the GET shape."""
        entity, coll = self.entity(name)
        record = body
        if isinstance(body, dict) and len(body) == 1 and isinstance(body.get(coll.singular), dict):
            record = body[coll.singular]
        if not isinstance(record, dict):
            raise ValueError("the body must be a JSON object, the record or the record under its singular key")
        record = dict(record)
        record[coll.id_field] = record_id
        if entity.contact_type:
            record["contact_type"] = entity.contact_type
        store = self.store[coll.name]
        with store.lock:
            previous = store.get(record_id)
            now = now_ts()
            if previous is not None and previous.get("created_time"):
                record["created_time"] = previous["created_time"]
            else:
                record.setdefault("created_time", now)
            if coll.has_last_modified:
                record.pop("updated_time", None)
                record["last_modified_time"] = now
            if coll.name == "items":
                _fill_stock_totals(record)
            store.put(record)
        view = detail_view(coll, record)
        if self.webhooks is not None:
            self.webhooks.send(name, record_id, coll.singular, self.as_served(coll, record, view, in_list=False))
        return view

    def patch_record(self, name: str, record_id: str, body: object) -> dict | None:
        """Merge fields into an existing record (top level), then save it as `put_record` does."""
        entity, coll = self.entity(name)
        current = self.get_record(name, record_id)
        if current is None:
            return None
        if isinstance(body, dict) and len(body) == 1 and isinstance(body.get(coll.singular), dict):
            body = body[coll.singular]
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object of the fields to change")
        return self.put_record(name, record_id, {**current, **body})

    def delete_record(self, name: str, record_id: str) -> dict | None:
        entity, coll = self.entity(name)
        if self.get_record(name, record_id) is None:
            return None
        previous = self.store[coll.name].delete(record_id)
        if previous is None:
            return None
        view = detail_view(coll, previous)
        if self.webhooks is not None:
            self.webhooks.send(
                name, record_id, coll.singular, self.as_served(coll, previous, view, False), deleted=True
            )
        return view

    def entity_ids(self, name: str) -> list[str]:
        entity, coll = self.entity(name)
        store = self.store[coll.name]
        with store.lock:
            return [
                rid
                for rid, r in store.records.items()
                if not entity.contact_type or r.get("contact_type") == entity.contact_type
            ]

    def close(self) -> None:
        self.stop_event.set()
        if self.webhooks is not None:
            self.webhooks.stop()


def _fill_stock_totals(item: dict) -> None:
    stock = item.get("warehouses")
    if not isinstance(stock, list):
        return

    def total(field: str) -> float:
        values = [w.get(field) for w in stock if isinstance(w, dict)]
        return sum(v for v in values if isinstance(v, int | float))

    item.setdefault("stock_on_hand", total("warehouse_stock_on_hand"))
    item.setdefault("available_stock", total("warehouse_available_stock"))
    item.setdefault("actual_available_stock", total("warehouse_actual_available_stock"))
