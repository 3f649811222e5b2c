"""What a route answers: status, body bytes, content type and extra headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    code: int | None = None  # Zoho's code, for the stats


def encode(payload: object) -> bytes:
    """Compact UTF-8 JSON. A string UTF-8 cannot carry (a lone surrogate, stored from a `\\ud800` escape)
    makes the whole answer ASCII with `\\u` escapes instead: still valid JSON, parsed back to the same text."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":")).encode()


def json_reply(status: int, payload: dict) -> Reply:
    code = payload.get("code") if isinstance(payload, dict) else None
    return Reply(status, encode(payload), code=code if isinstance(code, int) else None)


def zoho_error(status: int, code: int, message: str, **extra: object) -> Reply:
    return json_reply(status, {"code": code, "message": message, **extra})
