"""The figures of one sync: what Dagster shows as materialization metadata and `tds sync` prints."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    rejected: int = 0  # records kept as dead letters with their reason
    pages: int = 0
    api_calls: int = 0
    detail_calls: int = 0
    seconds: float = 0.0
    complete: bool = False  # the listing reached its last page
    skipped_reason: str | None = None
    months: set[str] = field(default_factory=set)  # document months written (partition keys)
    errors: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict[str, object]:
        figures = {
            "scope": self.scope,
            "fetched": self.fetched,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "stale": self.stale,
            "tombstoned": self.tombstoned,
            "rejected": self.rejected,
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
        return figures

    def summary(self) -> str:
        text = (
            f"{self.entity} ({self.scope}): fetched {self.fetched}, inserted {self.inserted}, "
            f"updated {self.updated}, unchanged {self.unchanged}, stale {self.stale}, "
            f"tombstoned {self.tombstoned}, rejected {self.rejected}, {self.api_calls} API calls, "
            f"{self.seconds:.1f}s"
        )
        return text + (f" — skipped: {self.skipped_reason}" if self.skipped_reason else "")
