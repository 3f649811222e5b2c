"""A watchdog for runs whose worker died with its code server (kill -9, out of memory, a host lost).

With Dagster's default run launcher a run's worker is a child of the code server that launched it, and
Dagster's run monitoring cannot see it (that launcher has no health check): such a run would stay STARTED
until its maximum run time. The sensor asks the run's code server (the gRPC address the run carries) whether
it is executing the run; a STARTED run it does not know, on two ticks in a row, is marked failed as an unexpected
termination, so the run retries of dagster.yaml launch it again. Runs launched elsewhere (a run pod of
K8sRunLauncher, which Dagster monitors itself) carry no such address and are left alone; so is a run whose
code server does not answer yet (it is restarting): it is judged once it answers.
"""

import json
import time

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import deserialize_value

GRACE_SECONDS = 60  # a run just launched may not be listed by its server yet
WATCHDOG_SECONDS = 30


def worker_alive(run_id: str, address: dict) -> bool | None:
    """Whether the code server at `address` is executing `run_id`; None when it does not answer."""
    client = DagsterGrpcClient(
        host=address.get("host"), port=address.get("port"), socket=address.get("socket"), use_ssl=False
    )
    try:
        answer = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run_id), timeout=10)
    except Exception:  # noqa: BLE001 - down or restarting: ask again next tick
        return None
    return deserialize_value(answer, CanCancelExecutionResult).can_cancel


def orphans(instance: dg.DagsterInstance, now: float) -> set[str]:
    """STARTED runs (past their grace) that the code server which launched them is not executing."""
    found = set()
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=100):
        run, started = record.dagster_run, record.start_time or now
        tag = run.tags.get(GRPC_INFO_TAG)
        if tag and now - started >= GRACE_SECONDS and worker_alive(run.run_id, json.loads(tag)) is False:
            found.add(run.run_id)
    return found


@dg.sensor(
    name="tds_run_watchdog",
    minimum_interval_seconds=WATCHDOG_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails (so that it is retried) a run whose worker died with its code server",
)
def run_watchdog(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    suspects = set(json.loads(context.cursor)) if context.cursor else set()
    found = orphans(context.instance, time.time())
    failed = 0
    for run_id in sorted(found & suspects):  # seen orphaned twice, 30 s apart: its worker is gone
        run = context.instance.get_run_by_id(run_id)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue
        failed += 1
        message = "the run's worker is gone: the code server that launched it no longer runs it (restarted?)"
        context.log.warning(f"run {run_id}: {message}")
        failure = JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        context.instance.report_run_failed(run, message=message, job_failure_data=failure)
    fresh = sorted(found - suspects)
    skip = f"{failed} runs failed (their worker is gone), {len(fresh)} more suspected"
    return dg.SensorResult(cursor=json.dumps(fresh), skip_reason=skip)
