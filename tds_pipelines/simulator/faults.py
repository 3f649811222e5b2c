"""Faults on demand (`POST /admin/faults`) and at random (`fault_rate`).

Kinds: `500` (code 1000 "Internal error"), `503` (an HTML gateway page, not JSON; with `retry_after` N it
carries `Retry-After: N`), `timeout` (the answer comes after `delay_seconds`, default 35, bounded by
config), `malformed` (status 200, truncated JSON), `duplicate` (a list page with page > 1 starts with the
previous page's last record, so that record appears twice across pages; armed duplicates wait for such a
page), `mutate` (right after list page `after_page` of a matching path is served, the data changes as a
Zoho user would change it: see mutations.py; it never replaces an answer). Random faults (`fault_rate`)
draw from `fault_kinds`: 500/503/malformed unless configured (a random `timeout` waits
`random_timeout_seconds`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

KINDS = ("500", "503", "timeout", "malformed", "duplicate", "mutate")
MUTATE_ACTIONS = ("delete", "rename", "insert", "edit")


@dataclass
class ArmedFault:
    kind: str
    remaining: int
    path_contains: str = ""
    delay_seconds: float = 35.0
    retry_after: int | None = None  # 503: the Retry-After header, in seconds
    action: str = ""  # mutate: one of MUTATE_ACTIONS
    after_page: int = 1  # mutate: the list page after which the data changes
    zoho_id: str | None = None  # mutate: the record to change (insert: the new record's id)

    def as_json(self) -> dict:
        out = {
            "kind": self.kind,
            "remaining": self.remaining,
            "path_contains": self.path_contains,
            "delay_seconds": self.delay_seconds,
        }
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.kind == "mutate":
            out.update(action=self.action, after_page=self.after_page, zoho_id=self.zoho_id)
        return out


def _mutate_fields(spec: dict) -> dict:
    action = str(spec.get("action", ""))
    if action not in MUTATE_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(MUTATE_ACTIONS)}")
    after_page = int(spec.get("after_page", 1))
    if after_page < 1:
        raise ValueError("after_page must be at least 1")
    zoho_id = spec.get("zoho_id")
    return {"action": action, "after_page": after_page, "zoho_id": str(zoho_id) if zoho_id else None}


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
        self._applied: list[dict] = []  # what each mutation did, oldest first

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
        retry_after = spec.get("retry_after")
        if retry_after is not None and (kind != "503" or int(retry_after) < 0):
            raise ValueError("retry_after (seconds, 0 or more) applies to kind 503 only")
        fault = ArmedFault(
            kind,
            count,
            str(spec.get("path_contains") or ""),
            delay,
            None if retry_after is None else int(retry_after),
            **(_mutate_fields(spec) if kind == "mutate" else {}),
        )
        with self._lock:
            self._armed.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault and forget the applied mutations."""
        with self._lock:
            self._armed.clear()
            self._applied.clear()

    def armed(self) -> list[dict]:
        with self._lock:
            return [f.as_json() for f in self._armed]

    def applied(self) -> list[dict]:
        """What each mutation did so far (`GET /admin/faults`)."""
        with self._lock:
            return list(self._applied)

    def record_applied(self, entry: dict) -> None:
        with self._lock:
            self._applied.append(entry)

    def take(self, path: str, is_later_list_page: bool) -> ArmedFault | None:
        """The fault this call gets, if any (consumes one use of an armed fault; mutations are taken apart)."""
        with self._lock:
            for fault in self._armed:
                if fault.kind == "mutate" or (fault.path_contains and fault.path_contains not in path):
                    continue
                if fault.kind == "duplicate" and not is_later_list_page:
                    continue
                self._use(fault)
                return fault
            if self.rate > 0 and self._rng.random() < self.rate:
                return ArmedFault(self._rng.choice(self.random_kinds), 1, delay_seconds=self.random_delay)
        return None

    def take_mutation(self, path: str, page: int) -> ArmedFault | None:
        """The mutation due now that list page `page` of `path` has been served, if any (consumes one use)."""
        with self._lock:
            for fault in self._armed:
                if fault.kind == "mutate" and fault.after_page == page and fault.path_contains in path:
                    self._use(fault)
                    return fault
        return None

    def _use(self, fault: ArmedFault) -> None:
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._armed.remove(fault)
