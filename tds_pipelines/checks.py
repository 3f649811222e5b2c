"""The statistics comparison: an asset check per entity, `count_matches_zoho`, comparing Zoho's count with the
ERP's live rows (one call where Zoho counts; the ids are listed only on a mismatch, for the sample).

Only the `statistics_comparison` job runs them: the sync jobs select their assets without checks, or every
15-minute stock sync would spend calls on counts. A comparison waits for a full sync still running, since
counting mid-sync would report the sync's own progress as a mismatch.
"""

import time

import dagster as dg

from tds_pipelines import settings
from tds_pipelines.alerting import check_alert
from tds_pipelines.entities import ENTITIES, EntitySpec
from tds_pipelines.resources import ErpDatabase, ZohoApi
from tds_pipelines.run_limits import job_tags
from tds_pipelines.sync.counts import compare_counts
from tds_pipelines.zoho.errors import BudgetShareExceeded, ZohoQuotaExhausted

CHECK_NAME = "count_matches_zoho"
# A queued full sync is not waited for: under a run queue of one (the demo) it waits for this run.
RUNNING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
WAIT_POLL_SECONDS = 30
# A difference over this share of Zoho's count (or these many rows) is an ERROR; a smaller one a WARN.
ERROR_SHARE, ERROR_ROWS = 0.01, 10


def wait_for_full_sync(context: dg.AssetCheckExecutionContext) -> None:
    """Return once no full_sync run is running, or after TDS_COMPARISON_WAIT_MINUTES (then count
    anyway, saying so)."""
    deadline = time.monotonic() + settings.comparison_wait().total_seconds()
    while True:
        running = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name="full_sync", statuses=RUNNING), limit=1
        )
        if not running:
            return
        if time.monotonic() >= deadline:
            context.log.warning("a full_sync run is still running after TDS_COMPARISON_WAIT_MINUTES: counting anyway")
            return
        context.log.info(f"waiting for full_sync run {running[0].dagster_run.run_id[:8]} to finish before counting")
        time.sleep(WAIT_POLL_SECONDS)


def build_count_check(spec: EntitySpec) -> dg.AssetChecksDefinition:
    key = dg.AssetKey(spec.asset_key)

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        description=f"Zoho's count of {spec.name} equals the live rows of `{spec.table}` (within "
        "TDS_COUNT_TOLERANCE_ROWS / TDS_COUNT_TOLERANCE_SHARE); the metadata samples the ids missing on either side",
    )
    def _count(context: dg.AssetCheckExecutionContext, zoho: ZohoApi, erp: ErpDatabase) -> dg.AssetCheckResult:
        wait_for_full_sync(context)
        engine = erp.engine()
        try:
            comparison = compare_counts(zoho.client(engine, context.op_execution_context.job_name), engine, spec)
        except (BudgetShareExceeded, ZohoQuotaExhausted) as exc:
            result = dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"not compared: {exc}",
                metadata={"skipped": str(exc)},
            )
            check_alert(engine, key, CHECK_NAME, result, kind="quota_skip")
            return result
        gap = abs(comparison.difference)
        severe = gap > max(ERROR_ROWS, ERROR_SHARE * comparison.zoho_count)
        result = dg.AssetCheckResult(
            passed=comparison.passed,
            severity=dg.AssetCheckSeverity.ERROR if severe else dg.AssetCheckSeverity.WARN,
            description=f"Zoho {comparison.zoho_count}, ERP {comparison.erp_count} live rows "
            f"(difference {comparison.difference}, tolerance {comparison.tolerance})",
            metadata=comparison.as_metadata(),
        )
        check_alert(engine, key, CHECK_NAME, result)
        return result

    return _count


count_checks = [build_count_check(spec) for spec in ENTITIES]

statistics_comparison = dg.define_asset_job(
    "statistics_comparison",
    selection=dg.AssetSelection.checks(*count_checks),
    executor_def=dg.in_process_executor,
    tags=job_tags("statistics_comparison", calls_zoho=True),
    description="Zoho's count of every entity against the ERP's live rows: one call per entity where Zoho counts.",
)
