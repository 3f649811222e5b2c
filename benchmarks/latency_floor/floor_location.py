"""Dagster's own floor for the webhook latency benchmark: a sensor of the queue sensor's interval that launches
an empty run for each marker file the benchmark drops, and a run that notes when it ran. A code location of
its own, loaded beside TDS's by the benchmark's workspace."""

import os
import time
from pathlib import Path

import dagster as dg

MARKERS = Path(os.environ.get("TDS_FLOOR_MARKERS", ".floor"))


@dg.op
def note_the_time(context) -> None:  # unannotated: Dagster resolves the context by its name
    marker = context.run.tags["marker"]
    (MARKERS / f"{marker}.done").write_text(repr(time.time()))


@dg.job(executor_def=dg.in_process_executor)
def floor_empty():
    note_the_time()


@dg.sensor(
    job=floor_empty,
    minimum_interval_seconds=int(os.environ.get("TDS_WEBHOOK_SENSOR_SECONDS") or 10),
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def floor_sensor(context: dg.SensorEvaluationContext):
    seen = int(context.cursor or 0)
    markers = sorted(int(p.stem) for p in MARKERS.glob("*.sent") if int(p.stem) > seen)
    for marker in markers:
        yield dg.RunRequest(run_key=f"floor-{marker}", tags={"marker": str(marker)})
    if markers:
        context.update_cursor(str(markers[-1]))


defs = dg.Definitions(jobs=[floor_empty], sensors=[floor_sensor])
