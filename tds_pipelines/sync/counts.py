"""Zoho's count of an entity against the ERP's live rows: a cheap check that the syncs lose nothing.

A count costs one call where Zoho counts the list (``response_option=2``). Ids are listed only when the
counts differ beyond the tolerance, to name the records behind the difference.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine, func, select

from tds_pipelines import settings
from tds_pipelines.entities import EntitySpec
from tds_pipelines.erp.tables import entity_tables
from tds_pipelines.sync.engine import Scope, plan_listing
from tds_pipelines.zoho.client import ZohoClient


def tolerance_for(erp_count: int, share: float | None = None, minimum: int | None = None) -> int:
    """The rows a count of `erp_count` live rows may be off by: `share` of them, at least `minimum` (both
    default to the environment's)."""
    share = settings.count_tolerance_share() if share is None else share
    minimum = settings.count_tolerance_rows() if minimum is None else minimum
    return max(minimum, round(share * erp_count))


@dataclass
class CountComparison:
    """One entity's count in Zoho and in the ERP; the id samples are filled only when the check failed."""

    entity: str
    zoho_count: int
    erp_count: int
    tolerance: int
    missing_in_erp: list[str] = field(default_factory=list)
    missing_in_zoho: list[str] = field(default_factory=list)
    api_calls: int = 0
    seconds: float = 0.0

    @property
    def difference(self) -> int:
        return self.zoho_count - self.erp_count

    @property
    def passed(self) -> bool:
        return abs(self.difference) <= self.tolerance

    def as_metadata(self) -> dict[str, object]:
        """Plain values, as Dagster metadata wants them."""
        return {
            "zoho_count": self.zoho_count,
            "erp_count": self.erp_count,
            "difference": self.difference,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "missing_in_erp": ", ".join(self.missing_in_erp),
            "missing_in_zoho": ", ".join(self.missing_in_zoho),
            "api_calls": self.api_calls,
            "seconds": round(self.seconds, 3),
        }


def compare_counts(
    client: ZohoClient, engine: Engine, spec: EntitySpec, tolerance: int | None = None, sample: int = 10
) -> CountComparison:
    """Compare Zoho's count of `spec` (the full sync's listing: same filters) with the ERP's live rows
    (``deleted_in_zoho_at IS NULL``). `tolerance` defaults to `tolerance_for` the ERP's count.

    Zoho's count: one call where it counts the list (`EntitySpec.zoho_counts`), else a listing of the ids
    (ceil(N/200) calls). Only a failed check lists the ids (unless that listing was the count) to fill the
    samples: the first `sample` ids, sorted, that one side has and the other lacks.

    Differences by design, which the samples name:
    - records Zoho lists but the ERP refused (dead letters) are missing in the ERP; rows a refused mass
      deletion left live are missing in Zoho;
    - customers and vendors are one /contacts list split by contact_type: a contact whose type changed stays
      live in its old table (the full sync's tombstone check GETs it by id and finds it), missing in Zoho;
    - a creation and a deletion since the last sync cancel out in the counts: only the full sync finds them.

    item_stock is no Zoho list (stock per item and warehouse, read from item details): not in the registry,
    not compared."""
    started, calls_before = time.monotonic(), client.calls
    params = plan_listing(spec, Scope("full"), None, date.today()).params
    zoho_ids: set[str] | None = None
    if spec.zoho_counts:
        zoho_count = client.count(spec.api, spec.path, spec.list_key, params, id_field=spec.id_field)
    else:
        zoho_ids = _zoho_ids(client, spec, params)
        zoho_count = len(zoho_ids)
    table = entity_tables[spec.name]
    live = table.c.deleted_in_zoho_at.is_(None)
    with engine.connect() as conn:
        erp_count = conn.execute(select(func.count()).select_from(table).where(live)).scalar_one()
    comparison = CountComparison(
        spec.name, zoho_count, erp_count, tolerance_for(erp_count) if tolerance is None else tolerance
    )
    if not comparison.passed:
        if zoho_ids is None:
            zoho_ids = _zoho_ids(client, spec, params)
        with engine.connect() as conn:
            erp_ids = set(conn.execute(select(table.c.zoho_id).where(live)).scalars())
        comparison.missing_in_erp = sorted(zoho_ids - erp_ids)[:sample]
        comparison.missing_in_zoho = sorted(erp_ids - zoho_ids)[:sample]
    comparison.api_calls = client.calls - calls_before
    comparison.seconds = time.monotonic() - started
    return comparison


def _zoho_ids(client: ZohoClient, spec: EntitySpec, params: dict[str, str]) -> set[str]:
    records = client.list_records(spec.api, spec.path, spec.list_key, params, id_field=spec.id_field)
    return {str(r[spec.id_field]) for r in records if isinstance(r, dict) and r.get(spec.id_field) not in (None, "")}
