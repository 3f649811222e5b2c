"""Monthly partitions of the document entities, by document date from TDS_HISTORY_START."""

from __future__ import annotations

import dagster as dg

from tds_pipelines import settings

document_months = dg.MonthlyPartitionsDefinition(start_date=settings.history_start().isoformat())
