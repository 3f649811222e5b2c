"""Faults on demand (`POST /admin/faults`) and at random (`fault_rate`).

Kinds: `500` (code 1000 "Internal error"), `503` (an HTML gateway page, not JSON), `timeout` (the answer
comes after `delay_seconds`, default 35, bounded by config), `malformed` (status 200, truncated JSON),
`duplicate` (a list page with page > 1 starts with the previous page's last record, so that record appears
twice across pages; armed duplicates wait for such a page). Random faults (`fault_rate`) draw from
`fault_kinds`: 500/503/malformed unless configured (a random `timeout` waits `random_timeout_seconds`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

KINDS = ("500", "503", "timeout", "malformed", "duplicate")


@dataclass
class ArmedFault:
    kind: str
    remaining: int
    path_contains: str = ""
    delay_seconds: float = 35.0

    def as_json(self) -> dict:
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "path_contains": self.path_contains,
            "delay_seconds": self.delay_seconds,
        }


class FaultPlan:
    def __init__(
        self,
        rate: float,
        seed: int | None,
        max_delay: float,
        random_kinds: tuple[str, ...] = ("500", "503", "malformed"),
        random_delay: float = 35.0,
    ) -> None:
        if not random_kinds or not set(random_kinds) <= {"500", "503", "timeout", "malformed"}:
            raise ValueError(f"random fault kinds must be among 500, 503, timeout, malformed: {random_kinds}")
        self.rate = rate
        self.max_delay = max_delay
        self.random_kinds = tuple(random_kinds)
        self.random_delay = min(random_delay, max_delay)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._armed: list[ArmedFault] = []

    def arm(self, spec: dict) -> ArmedFault:
        """Add a fault from its JSON spec; raises ValueError on a bad one."""
        kind = str(spec.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        count = int(spec.get("count", 1))
        if count < 1:
            raise ValueError("count must be at least 1")
        delay = float(spec.get("delay_seconds", 35.0))
        if not 0 <= delay <= self.max_delay:
            raise ValueError(f"delay_seconds must be within 0..{self.max_delay}")
        fault = ArmedFault(kind, count, str(spec.get("path_contains") or ""), delay)
        with self._lock:
            self._armed.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def armed(self) -> list[dict]:
        with self._lock:
            return [f.as_json() for f in self._armed]

    def take(self, path: str, is_later_list_page: bool) -> ArmedFault | None:
        """The fault this call gets, if any (consumes one use of an armed fault)."""
        with self._lock:
            for fault in self._armed:
                if fault.path_contains and fault.path_contains not in path:
                    continue
                if fault.kind == "duplicate" and not is_later_list_page:
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._armed.remove(fault)
                return fault
            if self.rate > 0 and self._rng.random() < self.rate:
                return ArmedFault(self._rng.choice(self.random_kinds), 1, delay_seconds=self.random_delay)
        return None
