"""Outgoing webhooks, as a Zoho workflow rule would POST them after a record changes.

Body: JSON `{"<singular>": {...full record...}}`. Header `X-TDS-Token` when a token is configured;
`X-Zoho-Webhook-Signature` (HMAC-SHA256 hex over the query parameters sorted by key, each as key+value,
followed by the raw body) when a secret is configured. Deletions go to the same URL with `event=deleted`
added to its query. Deliveries run one at a time, in order, on a daemon thread, with a bounded timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from tds_pipelines.simulator.replies import encode


def signature(secret: str, params: dict[str, str], body: bytes) -> str:
    """Zoho's webhook signature: HMAC-SHA256 hex of sorted key+value pairs, then the raw body."""
    signed = "".join(f"{k}{params[k]}" for k in sorted(params)).encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _with_param(url: str, key: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + [(key, value)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


class WebhookSender:
    def __init__(
        self,
        url: str,
        token: str | None,
        secret: str | None,
        timeout: float,
        record: Callable[[dict], None],
    ) -> None:
        self.url, self.token, self.secret, self.timeout = url, token, secret, timeout
        self._record = record
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def send(self, entity: str, record_id: str, singular: str, record: dict, deleted: bool = False) -> None:
        self._queue.put((entity, record_id, singular, record, deleted))

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._deliver(*job)

    def _deliver(self, entity: str, record_id: str, singular: str, record: dict, deleted: bool) -> None:
        url = _with_param(self.url, "event", "deleted") if deleted else self.url
        body = encode({singular: record})
        headers = {"Content-Type": "application/json", "User-Agent": "ZohoBooks-Webhook (TDS simulator)"}
        if self.token:
            headers["X-TDS-Token"] = self.token
        if self.secret:
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))
            headers["X-Zoho-Webhook-Signature"] = signature(self.secret, params, body)
        event = "deleted" if deleted else "saved"
        delivery = {"entity": entity, "id": record_id, "event": event, "url": url, "at": time.time()}
        try:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                delivery.update(ok=200 <= answer.status < 300, status=answer.status)
        except urllib.error.HTTPError as exc:
            delivery.update(ok=False, status=exc.code)
        except Exception as exc:  # noqa: BLE001 - a failed delivery is recorded, never raised
            delivery.update(ok=False, status=None, error=f"{type(exc).__name__}: {exc}")
        self._record(delivery)
