"""Alerts from Dagster's side: a failed check, a failed run, a sync skipped for lack of quota, a refresh token
Zoho refuses and a queue that stops draining become incidents in ``tds_alerts`` (one open row per incident),
posted once when raised and once when resolved (`erp.alerts`, `notify`).

Open-source Dagster sends no alert for a failed asset check: the checks call `check_alert` themselves. Runs
are watched by a run-failure sensor and resolved by a run-success sensor; a third sensor retries the posts
that did not go through.
"""

import logging

import dagster as dg
from sqlalchemy import Engine

from tds_pipelines.erp.alerts import raise_alert, resolve_alert
from tds_pipelines.notify import notify_pending
from tds_pipelines.resources import ErpDatabase

log = logging.getLogger(__name__)

TOKEN_INCIDENT = "zoho:refresh_token"
RUN_SENSOR_SECONDS = 10  # a tick reads the run events since its cursor: cheap, and alerts come sooner
# Jobs whose success proves Zoho accepted the refresh token again.
ZOHO_JOBS = frozenset({"full_sync", "incremental_sync", "stock_sync", "statistics_comparison"})
_TOKEN_WORDS = ("ZohoAuthError", "refresh token", "invalid_code", "invalid_client")
_QUOTA_WORDS = ("BudgetShareExceeded", "ZohoQuotaExhausted", "daily quota", "share of the daily")


def check_alert(
    engine: Engine, asset_key: dg.AssetKey, name: str, result: dg.AssetCheckResult, kind: str = "check_failed"
) -> None:
    """Raise (failed) or resolve (passed) the incident of check `name` on `asset_key`, then post what is due."""
    where = asset_key.to_user_string()
    incident = f"check:{where}:{name}"
    if result.passed:
        resolve_alert(engine, incident)
    else:
        details = {key: _plain(value) for key, value in (result.metadata or {}).items()}
        message = f"check {name} on {where} failed: {result.description or 'see its metadata'}"
        raise_alert(engine, incident, kind, result.severity.value, message, entity=where, details=details)
    deliver(engine)


def deliver(engine: Engine) -> None:
    """Post the notifications due; a failure is logged and left to `alert_notifier`, never raised."""
    try:
        notify_pending(engine)
    except Exception as exc:  # noqa: BLE001 - alerting must not fail the run or check that raised it
        log.warning("alert notifications not sent now (%s); the alert_notifier sensor retries", type(exc).__name__)


def classify_failure(job_name: str, text: str) -> tuple[str, str, str]:
    """(kind, incident, severity) of a failed run from its failure messages."""
    if any(word in text for word in _TOKEN_WORDS):
        return "token_refused", TOKEN_INCIDENT, "ERROR"
    if any(word in text for word in _QUOTA_WORDS) or ("skipped:" in text and "budget" in text):
        return "quota_skip", f"quota:{job_name}", "WARN"
    return "run_failed", f"run:{job_name}", "ERROR"


def _failure_text(context: dg.RunFailureSensorContext) -> str:
    """The run's failure and each failed step's error with its causes (Dagster wraps the step's exception)."""
    parts = [context.failure_event.message or ""]
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is None:
            parts.append(event.message or "")
        while error is not None:
            parts.append(f"{event.step_key}: {error.cls_name}: {error.message.strip()}")
            error = error.cause
    return "\n".join(part.strip() for part in parts if part)


@dg.run_failure_sensor(
    name="tds_run_failure_alerts",
    minimum_interval_seconds=RUN_SENSOR_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run becomes an alert (a refused refresh token and a quota skip have their own kind)",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, erp: ErpDatabase) -> None:
    run = context.dagster_run
    text = _failure_text(context)
    kind, incident, severity = classify_failure(run.job_name, text)
    engine = erp.engine()
    raise_alert(
        engine,
        incident,
        kind,
        severity,
        # The last line is the deepest cause of the last failed step: what actually went wrong.
        f"{run.job_name} run {run.run_id[:8]} failed: {text.splitlines()[-1][:300] if text else 'no message'}",
        details={"job": run.job_name, "run_id": run.run_id, "failure": text[:2000]},
    )
    deliver(engine)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="tds_run_recovery_alerts",
    minimum_interval_seconds=RUN_SENSOR_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run resolves its job's failure and quota alerts (and a Zoho job the token alert)",
)
def run_recovery_alerts(context: dg.RunStatusSensorContext, erp: ErpDatabase) -> None:
    job = context.dagster_run.job_name
    engine = erp.engine()
    for incident in (f"run:{job}", f"quota:{job}", *([TOKEN_INCIDENT] if job in ZOHO_JOBS else [])):
        resolve_alert(engine, incident)
    deliver(engine)


@dg.sensor(
    name="tds_alert_notifier",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts alert notifications that could not be sent when raised (TDS_ALERT_WEBHOOK_URL)",
)
def alert_notifier(context: dg.SensorEvaluationContext, erp: ErpDatabase) -> dg.SkipReason:
    sent = notify_pending(erp.engine())
    return dg.SkipReason(f"{sent} notifications sent" if sent else "nothing to send")


alert_sensors = [run_failure_alerts, run_recovery_alerts, alert_notifier]


def _plain(value: object) -> object:
    """A metadata value as JSON-able data (MetadataValue wraps it)."""
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, str | int | float | bool | type(None)) else str(inner)
