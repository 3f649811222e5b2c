"""Counters the admin route `GET /admin/stats` reports (reset by `POST /admin/reset-stats`)."""

from __future__ import annotations

import threading
from collections import Counter, deque


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.token_refreshes = 0  # tokens issued
            self.token_errors = Counter()  # error value -> count (invalid_code, Access Denied, ...)
            self.api_calls = 0  # calls admitted past the limits
            self.by_prefix: Counter = Counter()  # "/books/v3/invoices" -> calls answered
            self.by_status: Counter = Counter()  # "200" -> calls answered
            self.rejected: Counter = Counter()  # "44" / "45" / "1070" / "57" / "14" -> count
            self.faults: Counter = Counter()  # kind -> injected
            self.webhooks_sent = 0  # attempts answered 2xx
            self.webhooks_failed = 0  # attempts answered otherwise or failing to connect
            self.webhooks_given_up = 0  # deliveries whose last attempt failed
            self.webhook_deliveries: deque = deque(maxlen=200)  # the latest attempts (webhooks.py)

    def token(self, error: str | None) -> None:
        with self._lock:
            if error is None:
                self.token_refreshes += 1
            else:
                self.token_errors[error] += 1

    def answered(self, prefix: str, status: int, admitted: bool, code: int | None) -> None:
        with self._lock:
            if admitted:
                self.api_calls += 1
            self.by_prefix[prefix] += 1
            self.by_status[str(status)] += 1
            if code in (14, 44, 45, 57, 1070):
                self.rejected[str(code)] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def webhook(self, delivery: dict) -> None:
        with self._lock:
            if delivery.get("ok"):
                self.webhooks_sent += 1
            else:
                self.webhooks_failed += 1
                if delivery.get("final", True):
                    self.webhooks_given_up += 1
            self.webhook_deliveries.append(delivery)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "token_refreshes": self.token_refreshes,
                "token_errors": dict(self.token_errors),
                "api_calls": self.api_calls,
                "calls_by_path": dict(self.by_prefix),
                "calls_by_status": dict(self.by_status),
                "rejected": {code: self.rejected.get(code, 0) for code in ("14", "44", "45", "57", "1070")},
                "faults_injected": dict(self.faults),
                "webhooks_sent": self.webhooks_sent,
                "webhooks_failed": self.webhooks_failed,
                "webhooks_given_up": self.webhooks_given_up,
                "webhook_deliveries": list(self.webhook_deliveries),
            }
