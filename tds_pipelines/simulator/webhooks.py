"""Outgoing webhooks, as a Zoho workflow rule would POST them after a record changes, with Zoho's lapses.

Body: JSON `{"<singular>": {...full record...}}`. Header `X-TDS-Token` when a token is configured;
`X-Zoho-Webhook-Signature` (HMAC-SHA256 hex over the query parameters sorted by key, each as key+value,
followed by the raw body) when a secret is configured. Deletions go to the same URL with `event=deleted`
added to its query. The body and headers are fixed when the change is made: every copy and every retry of a
delivery is byte-identical and carries the same signature.

One daemon thread sends, one attempt at a time, each with a bounded timeout. What Zoho is reported to do
under load, on demand (`SETTINGS`: config fields `webhook_<name>`, `POST /admin/webhooks` at run time):

- `duplicate_rate` F: each delivery is, with probability F, sent a second time, `duplicate_delay_seconds`
  (at most; drawn at random) after its first attempt;
- `reorder_window` N (2 or more): deliveries are held until N are waiting, then sent in a shuffled order
  (never the order they were made in); a partial window is sent `reorder_flush_seconds` after its first
  delivery was held, so nothing waits for ever;
- `retries` R: an attempt answered with a non-2xx status, or failing to connect, is tried again up to R more
  times, after `retry_delay_seconds`, doubling at each retry, at most `retry_max_delay_seconds`; other
  deliveries go on meanwhile.

Random draws are seeded (`webhook_seed`, else the simulator's `seed`): the same changes duplicate and shuffle
alike. Every attempt is reported to `record` (stats: `GET /admin/webhooks`, `GET /admin/stats`) as
`{"delivery": n, "entity", "id", "event": "saved|deleted", "url", "at", "attempt": 1.., "duplicate": bool,
"ok", "status": HTTP status or null, "error"?: why it failed to connect, "retry_in"?: seconds to the next
attempt, "final": no attempt follows}`; a copy shares its original's `delivery` number. `pending` counts
the copies not yet final (held, waiting for a retry, being sent): 0 means everything made so far is done.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from tds_pipelines.simulator.replies import encode

# Settings changeable at run time: name -> (SimulatorConfig field, type, lowest, highest). Bounded, so that
# every delivery is final within a bounded time.
SETTINGS: dict[str, tuple[str, type, float, float]] = {
    "duplicate_rate": ("webhook_duplicate_rate", float, 0.0, 1.0),
    "duplicate_delay_seconds": ("webhook_duplicate_delay_seconds", float, 0.0, 60.0),
    "reorder_window": ("webhook_reorder_window", int, 0, 1000),
    "reorder_flush_seconds": ("webhook_reorder_flush_seconds", float, 0.01, 60.0),
    "retries": ("webhook_retries", int, 0, 10),
    "retry_delay_seconds": ("webhook_retry_delay_seconds", float, 0.0, 60.0),
    "retry_max_delay_seconds": ("webhook_retry_max_delay_seconds", float, 0.0, 600.0),
}


def check_settings(changes: Mapping[str, object]) -> dict[str, float | int]:
    """`changes` validated against `SETTINGS` (typed); raises ValueError naming the first bad one."""
    checked: dict[str, float | int] = {}
    for name, value in changes.items():
        if name not in SETTINGS:
            raise ValueError(f"unknown webhook setting {name!r}; known: {', '.join(SETTINGS)}")
        _, kind, low, high = SETTINGS[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
            raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}")
        if not low <= value <= high:
            raise ValueError(f"{name} must be within {kind(low)}..{kind(high)}")
        checked[name] = kind(value)
    return checked


def signature(secret: str, params: dict[str, str], body: bytes) -> str:
    """Zoho's webhook signature: HMAC-SHA256 hex of sorted key+value pairs, then the raw body."""
    signed = "".join(f"{k}{params[k]}" for k in sorted(params)).encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _with_param(url: str, key: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True) + [(key, value)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


@dataclass
class _Delivery:
    number: int
    entity: str
    record_id: str
    event: str
    url: str
    body: bytes
    headers: dict[str, str]
    duplicate_delay: float | None = None  # an original to be sent again: after this many seconds
    duplicate: bool = False
    attempt: int = 0


class WebhookSender:
    def __init__(
        self,
        url: str,
        token: str | None,
        secret: str | None,
        timeout: float,
        record: Callable[[dict], None],
        settings: Mapping[str, object] | None = None,
        seed: int | None = None,
    ) -> None:
        self.url, self.token, self.secret, self.timeout = url, token, secret, timeout
        self._record = record
        self.settings: dict[str, float | int] = {
            "duplicate_rate": 0.0,
            "duplicate_delay_seconds": 1.0,
            "reorder_window": 0,
            "reorder_flush_seconds": 1.0,
            "retries": 3,
            "retry_delay_seconds": 1.0,
            "retry_max_delay_seconds": 60.0,
        }
        self.settings.update(check_settings(settings or {}))
        # Two streams: duplicates follow the order changes are made in, shuffles the windows' contents.
        self._duplicate_rng = random.Random(f"{seed}:duplicate")
        self._shuffle_rng = random.Random(f"{seed}:reorder")
        self._numbers = itertools.count(1)
        self._sequence = itertools.count()  # ties between equal due times: first scheduled, first sent
        self._lock = threading.Condition()
        self._held: list[_Delivery] = []  # waiting for their reorder window
        self._held_since = 0.0
        self._due: list[tuple[float, int, _Delivery]] = []  # heap: (monotonic due time, sequence, delivery)
        self._pending = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    # ---- the simulator's side ----------------------------------------------------------------------------
    def send(self, entity: str, record_id: str, singular: str, record: dict, deleted: bool = False) -> None:
        """Queue the delivery of one change (returns at once)."""
        url = _with_param(self.url, "event", "deleted") if deleted else self.url
        body = encode({singular: record})
        headers = {"Content-Type": "application/json", "User-Agent": "ZohoBooks-Webhook (TDS simulator)"}
        if self.token:
            headers["X-TDS-Token"] = self.token
        if self.secret:
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))
            headers["X-Zoho-Webhook-Signature"] = signature(self.secret, params, body)
        event = "deleted" if deleted else "saved"
        with self._lock:
            if self._stopped:
                return
            delivery = _Delivery(next(self._numbers), entity, record_id, event, url, body, headers)
            self._pending += 1
            if self._duplicate_rng.random() < self.settings["duplicate_rate"]:
                delivery.duplicate_delay = self._duplicate_rng.uniform(0, self.settings["duplicate_delay_seconds"])
                self._pending += 1  # counted now: `pending` 0 also means the copy has been sent
            if self.settings["reorder_window"] >= 2:
                if not self._held:
                    self._held_since = time.monotonic()
                self._held.append(delivery)
                self._release_held(time.monotonic())
            else:
                self._schedule(delivery, time.monotonic())
            self._lock.notify()

    def configure(self, changes: Mapping[str, object]) -> dict[str, float | int]:
        """Change settings at run time (validated as a whole first); returns them all."""
        checked = check_settings(changes)
        with self._lock:
            self.settings.update(checked)
            self._release_held(time.monotonic())
            self._lock.notify()
            return dict(self.settings)

    def status(self) -> dict:
        """The settings and what is still to do: `pending` (not final yet) and `held` (in a reorder window)."""
        with self._lock:
            return {"url": self.url, **self.settings, "pending": self._pending, "held": len(self._held)}

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def stop(self) -> None:
        """Stop sending; what is still pending is dropped."""
        with self._lock:
            self._stopped = True
            self._lock.notify()

    # ---- the sending thread ------------------------------------------------------------------------------
    def _schedule(self, delivery: _Delivery, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._sequence), delivery))

    def _release_held(self, now: float) -> None:
        """Send the held window, shuffled, once full, flush-due, or no longer reordering (lock held)."""
        window = self.settings["reorder_window"]
        if not self._held:
            return
        full = len(self._held) >= window  # also true when reordering was turned off (window 0 or 1)
        if not full and now - self._held_since < self.settings["reorder_flush_seconds"]:
            return
        batch, self._held = self._held, []
        if len(batch) >= 2:
            made = [d.number for d in batch]
            while [
                d.number for d in batch
            ] == made:  # a reordered window never keeps the order the changes were made in
                self._shuffle_rng.shuffle(batch)
        for delivery in batch:
            self._schedule(delivery, now)

    def _next(self) -> _Delivery | None:
        """The next attempt due, waiting for it; None once stopped."""
        with self._lock:
            while not self._stopped:
                now = time.monotonic()
                self._release_held(now)
                if self._due and self._due[0][0] <= now:
                    return heapq.heappop(self._due)[2]
                waits = [self._due[0][0] - now] if self._due else []
                if self._held:
                    waits.append(self._held_since + self.settings["reorder_flush_seconds"] - now)
                self._lock.wait(timeout=max(0.0, min(waits)) if waits else None)
        return None

    def _run(self) -> None:
        while (delivery := self._next()) is not None:
            self._attempt(delivery)

    def _attempt(self, delivery: _Delivery) -> None:
        delivery.attempt += 1
        outcome = {
            "delivery": delivery.number,
            "entity": delivery.entity,
            "id": delivery.record_id,
            "event": delivery.event,
            "url": delivery.url,
            "at": time.time(),
            "attempt": delivery.attempt,
            "duplicate": delivery.duplicate,
        }
        try:
            request = urllib.request.Request(delivery.url, data=delivery.body, headers=delivery.headers, method="POST")
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                outcome.update(ok=200 <= answer.status < 300, status=answer.status)
        except urllib.error.HTTPError as exc:
            outcome.update(ok=False, status=exc.code)
        except Exception as exc:  # noqa: BLE001 - a failed attempt is recorded (and retried), never raised
            outcome.update(ok=False, status=None, error=f"{type(exc).__name__}: {exc}")
        with self._lock:
            now = time.monotonic()
            retries, first_delay = self.settings["retries"], self.settings["retry_delay_seconds"]
            final = outcome["ok"] or delivery.attempt > retries
            if not final:
                delay = min(first_delay * 2 ** (delivery.attempt - 1), self.settings["retry_max_delay_seconds"])
                outcome["retry_in"] = delay
                self._schedule(delivery, now + delay)
            if delivery.attempt == 1 and delivery.duplicate_delay is not None:
                copy = replace(delivery, duplicate=True, duplicate_delay=None, attempt=0)
                self._schedule(copy, now + delivery.duplicate_delay)
            outcome["final"] = final
            self._record(outcome)  # before `pending` drops: at 0, every attempt is in the stats
            if final:
                self._pending -= 1
