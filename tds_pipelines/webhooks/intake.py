"""From an HTTP request to a queue row: who may deliver, a bounded read of the body, what the body is.

Functions of the request's parts (no database), so the routes in `app` stay a few lines each. They read the
ASGI scope and receive channel directly: Starlette's Request scans its header list on every lookup, and a
delivery looks up a dozen.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope

from tds_pipelines.erp.db import clean_text
from tds_pipelines.webhooks.store import QueueRow
from tds_pipelines.zoho.webhooks import UnusableDelivery, decode_body, parse_delivery, signature_matches

TOKEN_HEADER = "x-tds-token"
SIGNATURE_HEADER = "x-zoho-webhook-signature"
FORM = "application/x-www-form-urlencoded"
# Kept with every row: enough to tell a Zoho delivery from a stray client, nothing secret.
HARMLESS_HEADERS = ("content-type", "user-agent")
# Never stored, even in the stub of a too-large body.
SECRET_HEADERS = frozenset({TOKEN_HEADER, SIGNATURE_HEADER, "authorization", "proxy-authorization", "cookie"})
FIRST_KILOBYTE = 1024


@dataclass(frozen=True)
class TooLarge:
    """A body over the limit: its declared Content-Length (None when sent chunked), the bytes read before
    stopping, and its first kilobyte."""

    declared: int | None
    read: int
    head: bytes


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lowercase name (ASGI sends them lowercase, as latin-1 bytes)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def query_params(scope: Scope) -> dict[str, str]:
    """The URL's query parameters (the last of a repeated one, as the simulator signs them)."""
    return dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))


def token_refusal(expected: str | None, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """Why the request may not deliver (None: it may). The token is compared in constant time."""
    if not expected:
        return "TDS_WEBHOOK_TOKEN is unset: the receiver refuses every delivery until it is configured"
    given = headers.get(TOKEN_HEADER) or query.get("token")
    if not given:
        return "no token: send the X-TDS-Token header or the token query parameter"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return "wrong token"
    return None


def signature_refusal(secret: str | None, query: dict[str, str], headers: Mapping[str, str], body: bytes) -> str | None:
    """Why the body's ``X-Zoho-Webhook-Signature`` does not prove it (None: it does, or no secret is set).

    The signed parameters are the URL's query as given (``token`` too: the simulator signs the URL it was
    configured with), plus the fields of a form body; the raw body follows them."""
    if not secret:
        return None
    params = dict(query)
    if _media_type(headers.get("content-type")) == FORM:
        params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if signature_matches(secret, params, body, headers.get(SIGNATURE_HEADER)):
        return None
    return "missing or wrong X-Zoho-Webhook-Signature"


async def read_bounded(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes | TooLarge:
    """The body, or `TooLarge` as soon as it is known to exceed `limit` bytes: never more than `limit`
    plus one chunk is held (a declared Content-Length over the limit stops after the first kilobyte)."""
    length = headers.get("content-length", "")
    declared = int(length) if length.isdigit() else None
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit or ((declared or 0) > limit and size >= FIRST_KILOBYTE):
            return TooLarge(declared, size, b"".join(chunks)[:FIRST_KILOBYTE])
    return b"".join(chunks)


def delivery_row(body: bytes, headers: Mapping[str, str], entity: str | None, event: str | None) -> QueueRow:
    """A PENDING row for a usable body; a DEAD_LETTER row (event ``webhook_unusable``, the reason in
    ``last_error``) for one that is not JSON, names no known entity, or carries no id."""
    kept = harmless_headers(headers)
    try:
        document = decode_body(body, headers.get("content-type"))
    except UnusableDelivery as exc:
        return _unusable(body, body.decode("utf-8", errors="replace"), str(exc), kept)
    except UnicodeDecodeError as exc:
        return _unusable(body, body.decode("utf-8", errors="replace"), f"the body is not UTF-8 text: {exc}", kept)
    try:
        delivery = parse_delivery(document, entity, event)
    except UnusableDelivery as exc:
        return _unusable(body, document, str(exc), kept)
    verbatim = _media_type(headers.get("content-type")) != FORM  # a JSON body holds the record as sent
    return QueueRow(
        status="PENDING",
        event="webhook_deleted" if delivery.deleted else "webhook",
        body_hash=delivery.key,  # a redelivery of this version is stored once
        payload=delivery.record,
        headers=kept,
        entity=delivery.entity,
        zoho_id=clean_text(delivery.zoho_id),
        payload_text=body.decode() if verbatim else None,
        payload_path=tuple(key for key, value in document.items() if value is delivery.record)[:1],
    )


def _unusable(body: bytes, parsed: object, reason: str, headers: dict) -> QueueRow:
    return QueueRow(
        status="DEAD_LETTER",
        event="webhook_unusable",
        body_hash=hashlib.sha256(body).hexdigest(),  # a retried identical body is stored once
        payload={"body": parsed},
        headers=headers,
        last_error=clean_text(reason),  # it may quote the body's keys
    )


def too_large_row(too_large: TooLarge, headers: Mapping[str, str], limit: int) -> QueueRow:
    """The DEAD_LETTER stub of a body over the limit: its size (at least, when sent chunked), the headers but
    secrets, its first kilobyte. Zoho's retries of one body (same size and start) are stored once."""
    size = too_large.declared or too_large.read
    said = "sent chunked" if too_large.declared is None else f"{size} bytes"
    head = too_large.head
    return QueueRow(
        status="DEAD_LETTER",
        event="webhook_too_large",
        body_hash=hashlib.sha256(f"{too_large.declared}:".encode() + head).hexdigest(),
        payload={
            "size": size,
            "headers": {name: value for name, value in headers.items() if name.lower() not in SECRET_HEADERS},
            "first_kilobyte": head.decode("utf-8", errors="replace"),
        },
        headers=harmless_headers(headers),
        last_error=f"the body ({said}) is over the {limit}-byte limit (TDS_WEBHOOK_MAX_BYTES)",
    )


def harmless_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in HARMLESS_HEADERS if name in headers}


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()
