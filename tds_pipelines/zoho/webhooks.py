"""Zoho's webhooks (workflow-rule deliveries): the signature, and what a delivered body means.

A workflow rule POSTs the whole record wrapped in its singular key (``{"invoice": {...}}``), as JSON or as the
form field ``JSONString``; a delete rule may add ``event=deleted`` to the URL. `parse_delivery` turns a body
into an entity, an id and the record, or raises `UnusableDelivery` saying why: the receiver, a replay and the
import of the old service's deliveries all read bodies through it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from tds_pipelines.entities import BY_NAME, ENTITIES, EntitySpec

# contact is a customer or a vendor by its contact_type; every other wrapper key names one entity.
_CONTACT = "contact"
BY_WRAPPER: dict[str, EntitySpec] = {
    spec.singular or spec.get_key: spec for spec in ENTITIES if (spec.singular or spec.get_key) != _CONTACT
}
BY_WRAPPER["customerpayment"] = BY_NAME["customer_payments"]  # Zoho names the module so in workflow rules


class UnusableDelivery(ValueError):
    """A body that cannot be applied: not JSON, no known wrapper key, no id. The message says which."""


@dataclass(frozen=True)
class Delivery:
    """A usable delivery: what changed (`deleted` for a delete event) and the record as Zoho sent it."""

    entity: str
    zoho_id: str
    record: dict
    deleted: bool = False

    @property
    def key(self) -> str:
        """Names this version of this record: a redelivery has the same key, and is stored once."""
        text = json.dumps(self.record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
        kind = "deleted" if self.deleted else "saved"
        return hashlib.sha256(f"{self.entity}:{self.zoho_id}:{kind}:{text}".encode()).hexdigest()


def signature(secret: str, params: Mapping[str, str], body: bytes) -> str:
    """``X-Zoho-Webhook-Signature``: HMAC-SHA256 hex of the query and form parameters sorted by key, each as
    key + value, followed by the raw body."""
    signed = "".join(f"{key}{params[key]}" for key in sorted(params)).encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_matches(secret: str, params: Mapping[str, str], body: bytes, given: str | None) -> bool:
    """Whether `given` is the body's signature (compared in constant time)."""
    return given is not None and hmac.compare_digest(signature(secret, params, body), given.strip().lower())


def decode_body(body: bytes, content_type: str | None) -> object:
    """The JSON document of a delivery: the body itself, or its form field ``JSONString``."""
    text = body.decode("utf-8", errors="strict") if isinstance(body, bytes) else str(body)
    if content_type and content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        fields = parse_qs(text, keep_blank_values=True)
        if "JSONString" not in fields:
            raise UnusableDelivery("a form body without a JSONString field")
        text = fields["JSONString"][0]
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UnusableDelivery(f"the body is not JSON: {exc}") from None


def parse_delivery(document: object, entity: str | None = None, event: str | None = None) -> Delivery:
    """What a delivered JSON document means. `entity` (the URL's ``?entity=``, a TDS entity name) and
    `event` (``?event=``; ``deleted`` marks a deletion) come from the rule's URL when it sets them."""
    if not isinstance(document, dict):
        raise UnusableDelivery(f"the body is a JSON {type(document).__name__}, not an object")
    spec, record = _find_record(document, entity)
    if not isinstance(record, dict):
        raise UnusableDelivery(f"{spec.name}: the record under the wrapper key is not a JSON object")
    if spec.name in ("customers", "vendors") and entity is None:
        spec = BY_NAME["vendors" if str(record.get("contact_type", "")).lower() == "vendor" else "customers"]
    zoho_id = record.get(spec.id_field)
    if zoho_id in (None, "") or isinstance(zoho_id, bool | dict | list):
        raise UnusableDelivery(f"{spec.name}: the record has no {spec.id_field}")
    return Delivery(spec.name, str(zoho_id).strip(), record, deleted=(event or "").lower() == "deleted")


def _find_record(document: dict, entity: str | None) -> tuple[EntitySpec, object]:
    if entity is not None:
        if entity not in BY_NAME:
            raise UnusableDelivery(f"unknown entity {entity!r} in the URL; known: {', '.join(BY_NAME)}")
        spec = BY_NAME[entity]
        return spec, document.get(spec.singular or spec.get_key, document)  # wrapped, or the bare record
    for key, value in document.items():
        if key == _CONTACT:
            return BY_NAME["customers"], value
        if key in BY_WRAPPER:
            return BY_WRAPPER[key], value
    keys = ", ".join(sorted(map(str, document))[:5]) or "none"
    raise UnusableDelivery(f"no known record key in the body (keys: {keys}); add ?entity=<name> to the rule's URL")
