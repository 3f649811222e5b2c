"""The webhook queue as an asset, `tds/webhook_queue`: materializing it heals the queue (`auto_heal`) and
records its health, and its checks judge that health.

Healing returns to PENDING the items stuck in PROCESSING (their run has ended, or they are locked longer than
TDS_HEAL_STUCK_MINUTES) and retries once the dead letters older than TDS_HEAL_DEAD_LETTER_HOURS. No Zoho call.
"""

import dagster as dg

from tds_pipelines import settings
from tds_pipelines.alerting import check_alert
from tds_pipelines.erp.healing import QueueHealth, queue_health, requeue_stuck, retry_old_dead_letters
from tds_pipelines.resources import ErpDatabase
from tds_pipelines.run_limits import job_tags

QUEUE_KEY = dg.AssetKey(["tds", "webhook_queue"])
ENDED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
SUCCESS_WARN, SUCCESS_ERROR = 0.99, 0.9

QUEUE_CHECKS = {
    "oldest_pending_age": "The oldest waiting webhook is younger than TDS_QUEUE_PENDING_WARN_SECONDS (WARN) "
    "and TDS_QUEUE_PENDING_ERROR_SECONDS (ERROR): older means the queue stopped draining",
    "no_dead_letters": "No dead letter waits for an operator (WARN): `tds dlq list`, then fix and replay",
    "no_stuck_items": "No item stays PROCESSING after healing (ERROR)",
    "success_rate_24h": f"At least {SUCCESS_WARN:.0%} of the last 24 hours' attempts succeeded "
    f"(WARN; ERROR under {SUCCESS_ERROR:.0%})",
}


def queue_check_results(health: QueueHealth) -> list[dg.AssetCheckResult]:
    """The four checks' results for the queue's `health`."""
    warn_after, error_after = settings.queue_pending_limits()
    age = health.oldest_pending_age_seconds or 0.0
    rate = health.success_rate_24h

    def result(name: str, passed: bool, severity: str, description: str, **metadata) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name=name,
            asset_key=QUEUE_KEY,
            passed=passed,
            severity=dg.AssetCheckSeverity(severity),
            description=description,
            metadata=metadata,
        )

    return [
        result(
            "oldest_pending_age",
            age <= warn_after,
            "ERROR" if age > error_after else "WARN",
            f"the oldest waiting webhook is {age:.0f} s old (warn after {warn_after:.0f} s, error after "
            f"{error_after:.0f} s)",
            oldest_pending_age_seconds=round(age, 3),
        ),
        result(
            "no_dead_letters",
            health.dead_letters == 0,
            "WARN",
            f"{health.dead_letters} dead letters wait for an operator (`tds dlq list`)",
            dead_letters=health.dead_letters,
        ),
        result(
            "no_stuck_items",
            health.stuck == 0,
            "ERROR",
            f"{health.stuck} items are still PROCESSING after healing",
            stuck=health.stuck,
        ),
        result(
            "success_rate_24h",
            rate is None or rate >= SUCCESS_WARN,
            "ERROR" if rate is not None and rate < SUCCESS_ERROR else "WARN",
            "no attempt in 24 hours" if rate is None else f"{rate:.2%} of the last 24 hours' attempts succeeded",
            success_rate_24h=-1.0 if rate is None else round(rate, 4),
        ),
    ]


@dg.asset(
    key=QUEUE_KEY,
    group_name="tds",
    kinds={"python", "postgres"},
    check_specs=[dg.AssetCheckSpec(name, asset=QUEUE_KEY, description=text) for name, text in QUEUE_CHECKS.items()],
    description="The webhook queue (`tds_sync_queue`): each materialization heals it (stuck items back to "
    "PENDING, old dead letters retried once) and records its health; its checks judge it.",
)
def webhook_queue(context: dg.AssetExecutionContext, erp: ErpDatabase) -> dg.MaterializeResult:
    engine = erp.engine()

    def run_ended(run_id: str | None) -> bool:
        run = context.instance.get_run_by_id(run_id) if run_id else None
        return run is not None and run.status in ENDED  # unknown ids (a `tds` command) wait for the lock age

    requeued = requeue_stuck(engine, run_ended, settings.heal_stuck_after())
    retried = retry_old_dead_letters(engine, settings.heal_dead_letters_after())
    health = queue_health(engine, settings.heal_stuck_after())
    context.log.info(f"auto_heal: {len(requeued)} stuck items requeued, {len(retried)} old dead letters retried")
    results = queue_check_results(health)
    for check in results:
        kind = "queue_stalled" if check.check_name == "oldest_pending_age" else "check_failed"
        check_alert(engine, QUEUE_KEY, check.check_name, check, kind)
    metadata = health.as_metadata() | {"requeued": len(requeued), "dead_letters_retried": len(retried)}
    return dg.MaterializeResult(metadata=metadata, check_results=results)


auto_heal = dg.define_asset_job(
    "auto_heal",
    selection=dg.AssetSelection.assets(QUEUE_KEY),
    executor_def=dg.in_process_executor,
    tags=job_tags("auto_heal", calls_zoho=False),
    description="Heal the webhook queue and record its health (no Zoho call).",
)
