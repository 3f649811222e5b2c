"""The figures of one sync: what Dagster shows as materialization metadata and `tds sync` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Why a sync did not run or did not finish:
#   busy     another run holds the entity's sync lock (it does the work)
#   budget   the job's share of Zoho's daily quota is spent, or left to entities that waited longer
#   not_due  a small full-only set that the daily full sync lists; an incremental run leaves it alone
Skip = Literal["busy", "budget", "not_due"]
EXAMPLES_KEPT = 5


@dataclass
class SyncStats:
    entity: str
    scope: str
    fetched: int = 0  # records listed (after in-run de-duplication)
    duplicates: int = 0  # records Zoho listed twice in this run
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0  # the summary showed no change: no detail call, no write
    stale: int = 0  # the ERP already held a newer version (e.g. from a webhook)
    tombstoned: int = 0
    tombstones_refused: int = 0  # candidates of a refused mass deletion
    confirm_calls: int = 0  # calls spent confirming tombstone candidates
    confirmed_live: int = 0  # candidates Zoho still had (missed by an offset-paged listing)
    rejected: int = 0  # records kept as dead letters with their reason
    already_rejected: int = 0  # records whose version is a dead letter already: not fetched again
    unparseable: int = 0  # typed values stored as NULL (the row's raw column keeps what Zoho sent)
    pages: int = 0
    api_calls: int = 0
    detail_calls: int = 0
    seconds: float = 0.0
    complete: bool = False  # the listing reached its last page
    all_months: bool = False  # a complete listing of every date: every document month is in sync
    skipped: Skip | None = None
    skipped_reason: str | None = None
    months: set[str] = field(default_factory=set)  # document months written (partition keys)
    errors: list[str] = field(default_factory=list)
    unparseable_examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, kind: Skip, reason: str) -> None:
        self.skipped, self.skipped_reason, self.complete = kind, reason, False

    def count_unparseable(self, zoho_id: str, warnings: list[str]) -> None:
        self.unparseable += len(warnings)
        room = EXAMPLES_KEPT - len(self.unparseable_examples)
        self.unparseable_examples.extend(f"{zoho_id}: {w}" for w in warnings[:room])

    def as_metadata(self) -> dict[str, object]:
        figures = {
            "scope": self.scope,
            "fetched": self.fetched,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "tombstoned": self.tombstoned,
            "tombstones_refused": self.tombstones_refused,
            "tombstone_confirm_calls": self.confirm_calls,
            "confirmed_live": self.confirmed_live,
            "rejected": self.rejected,
            "already_rejected": self.already_rejected,
            "unparseable_values": self.unparseable,
            "duplicates_dropped": self.duplicates,
            "pages": self.pages,
            "api_calls": self.api_calls,
            "detail_calls": self.detail_calls,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
        }
        if self.skipped_reason:
            figures["skipped_reason"] = self.skipped_reason
        if self.errors:
            figures["first_errors"] = "\n".join(self.errors[:10])
        if self.unparseable_examples:
            figures["unparseable_examples"] = (
                "\n".join(self.unparseable_examples) + "\n(each row's raw column keeps the value Zoho sent)"
            )
        if self.notes:
            figures["notes"] = "\n".join(self.notes)
        return figures

    def summary(self) -> str:
        text = (
            f"{self.entity} ({self.scope}): fetched {self.fetched}, inserted {self.inserted}, "
            f"updated {self.updated}, unchanged {self.unchanged}, stale {self.stale}, "
            f"tombstoned {self.tombstoned}, rejected {self.rejected}, {self.api_calls} API calls, "
            f"{self.seconds:.1f}s"
        )
        return text + (f" — skipped: {self.skipped_reason}" if self.skipped_reason else "")
