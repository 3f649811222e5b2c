"""The webhook queue: deliveries applied to the ERP with the pull's rules and no Zoho call, retried, dead-lettered,
replayed, drained by parallel runs, and the Dagster jobs and sensor around it.

PostgreSQL throughout (the `erp` fixture); tests taking `store` also run on SQLite, the demo's database.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import func, select, text

from tds_pipelines.definitions import build_defs
from tds_pipelines.entities import ENTITIES
from tds_pipelines.erp.db import as_utc
from tds_pipelines.erp.queue import (
    COMPLETED,
    DEAD_LETTER,
    FAILED,
    PENDING,
    PROCESSING,
    claim_ready,
    enqueue_delivery,
    get_item,
    import_deliveries,
    list_dead_letters,
    peek_ready,
    queue_counts,
    replay,
)
from tds_pipelines.erp.tables import api_calls, child_tables_by_name, entity_tables, sync_queue
from tds_pipelines.resources import ErpDatabase
from tds_pipelines.sensors import decide, zoho_webhook_queue_sensor
from tds_pipelines.sync import apply as apply_module
from tds_pipelines.sync.apply import apply_items, drain
from tds_pipelines.zoho.webhooks import parse_delivery
from tds_pipelines_tests.sync_fixtures import admin, fresh_erp, row_count, simulator, zoho_record

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
REFUSED = "refused by the ERP"


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S%z")


def product(zoho_id: str, name: str, modified: datetime, **fields) -> dict:
    return {"item_id": zoho_id, "name": name, "rate": 12.5, "last_modified_time": stamp(modified)} | fields


def invoice(zoho_id: str, day: str, modified: datetime, lines: int = 5) -> dict:
    return {
        "invoice_id": zoho_id,
        "invoice_number": f"INV-{zoho_id}",
        "date": day,
        "total": 100,
        "last_modified_time": stamp(modified),
        "line_items": [{"line_item_id": f"{zoho_id}-{n}", "quantity": n, "rate": 10} for n in range(1, lines + 1)],
    }


def deliver(engine, document: dict, event: str | None = None, received_at: datetime | None = None):
    """Queue a body as the receiver would; returns (queue id, duplicate)."""
    with engine.begin() as conn:
        return enqueue_delivery(conn, parse_delivery(document, event=event), received_at)


def stored(observer, name: str, zoho_id: str):
    table = entity_tables[name]
    with observer.connect() as conn:
        return conn.execute(select(table).where(table.c.zoho_id == zoho_id)).mappings().first()


def items(observer) -> dict[int, dict]:
    with observer.connect() as conn:
        return {row["id"]: dict(row) for row in conn.execute(select(sync_queue)).mappings()}


def add_erp_rule(observer) -> None:
    """An ERP's own rule on product names, which TDS cannot know of (a trigger on SQLite)."""
    with observer.begin() as conn:
        if observer.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE zoho_products ADD CONSTRAINT erp_rule CHECK (name <> '{REFUSED}')"))
        else:
            conn.execute(
                text(
                    f"CREATE TRIGGER erp_rule BEFORE INSERT ON zoho_products WHEN NEW.name = '{REFUSED}' "
                    "BEGIN SELECT RAISE(ABORT, 'erp_rule'); END"
                )
            )


def drop_erp_rule(observer) -> None:
    with observer.begin() as conn:
        if observer.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE zoho_products DROP CONSTRAINT erp_rule"))
        else:
            conn.execute(text("DROP TRIGGER erp_rule"))


# -- applying --------------------------------------------------------------------------------------------


def test_a_webhook_of_every_entity_is_applied_whole_without_a_zoho_call(store):
    engine, observer = store
    with simulator(records=5) as sim:
        records = {spec.name: zoho_record(sim, spec.name, admin(sim, "GET", spec.name)["ids"][0]) for spec in ENTITIES}
        calls_before = admin(sim, "GET", "stats")["api_calls"]
        for spec in ENTITIES:
            delivery = parse_delivery({spec.singular or spec.get_key: records[spec.name]})
            assert delivery.entity == spec.name  # contacts: customer or vendor by contact_type
            deliver(engine, {spec.singular or spec.get_key: records[spec.name]})
        stats = drain(engine, "run-1")
        assert admin(sim, "GET", "stats")["api_calls"] == calls_before
    assert row_count(observer, api_calls) == 0
    assert {row["status"] for row in items(observer).values()} == {COMPLETED}
    for spec in ENTITIES:
        record = records[spec.name]
        row = stored(observer, spec.name, str(record[spec.id_field]))
        assert row is not None and row["raw"] == record, spec.name
        assert row["summary_hash"] is None and row["written_at"] is not None, spec.name
        assert stats[spec.name].inserted == 1, spec.name
        for child in spec.children:
            entries = record.get(child.field) or []
            table = child_tables_by_name[child.table]
            with observer.connect() as conn:
                count = conn.execute(
                    select(func.count()).select_from(table).where(table.c.parent_zoho_id == row["zoho_id"])
                ).scalar_one()
            assert count == len(entries), child.table
        if spec.date_field and record.get(spec.date_field) >= "2020-01-01":
            assert stats[spec.name].months == {record[spec.date_field][:8] + "01"}


def test_duplicate_and_out_of_order_deliveries_leave_the_newest_version(erp):
    engine, observer = erp
    versions = {hour: product("7", f"version {hour}", T0 + timedelta(hours=hour)) for hour in (1, 2, 3)}
    first, duplicate = deliver(engine, {"item": versions[3]}), deliver(engine, {"item": versions[3]})
    assert duplicate == (first[0], True)  # the same version again is stored once
    deliver(engine, {"item": versions[1]})
    drain(engine, "one-by-one", batch_size=1)
    assert stored(observer, "products", "7")["name"] == "version 3"
    # An older version arriving late, in a batch of its own or beside the newest: the newest stays.
    deliver(engine, {"item": versions[2]})
    stats = drain(engine, "late")
    assert stored(observer, "products", "7")["name"] == "version 3" and stats["products"].stale == 1
    for hour in (4, 2):
        deliver(engine, {"item": product("8", f"version {hour}", T0 + timedelta(hours=hour))})
    stats = drain(engine, "together")
    assert stored(observer, "products", "8")["name"] == "version 4" and stats["products"].stale == 1
    assert {row["status"] for row in items(observer).values()} == {COMPLETED}


def test_a_delete_tombstones_and_a_late_older_redelivery_does_not_revive(store):
    engine, observer = store
    deliver(engine, {"invoice": invoice("5", "2024-02-03", T0)}, received_at=T0)
    received = T0 + timedelta(hours=1)
    deliver(engine, {"invoice": invoice("5", "2024-02-03", T0)}, event="deleted", received_at=received)
    stats = drain(engine, "run")
    row = stored(observer, "invoices", "5")
    assert as_utc(row["deleted_in_zoho_at"]) == received and as_utc(row["zoho_last_modified_time"]) == received
    assert stats["invoices"].tombstoned == 1
    # Zoho retries an older save after the delete: stale, still deleted.
    deliver(engine, {"invoice": invoice("5", "2024-02-03", T0 + timedelta(minutes=30))}, received_at=received)
    drain(engine, "late")
    assert stored(observer, "invoices", "5")["deleted_in_zoho_at"] is not None
    # A delete that arrives before the record was ever stored still blocks the older save behind it.
    deliver(engine, {"invoice": invoice("6", "2024-02-03", T0)}, event="deleted", received_at=received)
    deliver(engine, {"invoice": invoice("6", "2024-02-03", T0)}, received_at=T0)
    drain(engine, "reordered")
    assert stored(observer, "invoices", "6")["deleted_in_zoho_at"] is not None
    # A genuinely newer version brings the record back.
    deliver(engine, {"invoice": invoice("5", "2024-02-03", received + timedelta(hours=1))})
    drain(engine, "newer")
    assert stored(observer, "invoices", "5")["deleted_in_zoho_at"] is None
    # Zoho's clock ahead of ours, or a record that cannot be stored: the deletion still tombstones the row.
    deliver(engine, {"invoice": invoice("5", "2024-02-03", T0 + timedelta(minutes=10))}, "deleted", received)
    poison = invoice("7", "2024-02-03", T0) | {"total": 10**15}
    deliver(engine, {"invoice": invoice("7", "2024-02-03", T0)}, received_at=T0)
    deliver(engine, {"invoice": poison}, event="deleted", received_at=received)
    stats = drain(engine, "skewed")
    assert stats["invoices"].tombstoned == 2 and stats["invoices"].failed == 0
    for zoho_id, version in (("5", received + timedelta(hours=1)), ("7", received)):
        row = stored(observer, "invoices", zoho_id)
        assert as_utc(row["deleted_in_zoho_at"]) == received and as_utc(row["zoho_last_modified_time"]) == version


# -- failures, dead letters, replays ---------------------------------------------------------------------


def test_poison_items_are_dead_lettered_after_their_attempts_while_their_batch_completes(store, monkeypatch):
    engine, observer = store
    add_erp_rule(observer)
    for n in range(20):
        deliver(engine, {"item": product(f"good-{n}", f"product {n}", T0)})
    refused = deliver(engine, {"item": product("bad-erp", REFUSED, T0)})[0]
    too_big = deliver(engine, {"item": product("bad-number", "huge", T0, rate=10**15)})[0]
    first = drain(engine, "first")
    assert row_count(observer, entity_tables["products"]) == 20
    assert first["products"].inserted == 20 and first["products"].failed == 2
    queue = items(observer)
    assert sum(row["status"] == COMPLETED for row in queue.values()) == 20
    for item_id, reason in ((refused, "erp_rule"), (too_big, "NUMERIC")):
        assert queue[item_id]["status"] == FAILED and queue[item_id]["attempts"] == 1
        assert reason in queue[item_id]["last_error"]
        wait = as_utc(queue[item_id]["next_attempt_at"]) - datetime.now(UTC)
        assert timedelta(seconds=25) < wait <= timedelta(seconds=30)  # backoff: 30 s, then 60, 120, ...
    assert peek_ready(engine) == (0, None) and drain(engine, "too soon") == {}
    with observer.begin() as conn:  # the 30 s pass
        conn.execute(sync_queue.update().where(sync_queue.c.status == FAILED).values(next_attempt_at=T0))
    monkeypatch.setenv("TDS_WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("TDS_WEBHOOK_RETRY_SECONDS", "0")  # the later waits too
    last = drain(engine, "retries")
    assert last["products"].dead_lettered == 2
    for item_id in (refused, too_big):
        row = get_item(engine, item_id)
        assert row.status == DEAD_LETTER and row.attempts == 3
        assert [entry["attempts"] for entry in row.error_history] == [1, 2, 3]
    assert {letter.id for letter in list_dead_letters(engine)} == {refused, too_big}
    assert queue_counts(engine) | {"oldest_pending_seconds": None} == {
        PENDING: 0,
        PROCESSING: 0,
        COMPLETED: 20,
        FAILED: 0,
        DEAD_LETTER: 2,
        "oldest_pending_seconds": None,
    }


def test_replay_after_a_fix_applies_the_dead_letter_and_keeps_its_history(store, monkeypatch):
    engine, observer = store
    monkeypatch.setenv("TDS_WEBHOOK_MAX_ATTEMPTS", "1")
    add_erp_rule(observer)
    item_id = deliver(engine, {"item": product("9", REFUSED, T0)})[0]
    drain(engine, "first")
    assert get_item(engine, item_id).status == DEAD_LETTER
    with pytest.raises(ValueError):
        replay(engine)  # no filter: refused rather than replaying everything by accident
    assert replay(engine, error_contains="no such error") == 0
    drop_erp_rule(observer)  # the fix
    assert replay(engine, entity="products", error_contains="ERP_RULE") == 1
    replayed = get_item(engine, item_id)
    assert replayed.status == PENDING and replayed.attempts == 0 and replayed.last_error is None
    failure, replay_entry = replayed.error_history
    assert failure["status"] == DEAD_LETTER and "erp_rule" in failure["error"]
    assert replay_entry["status"] == "replayed" and replay_entry["attempts"] == 1
    drain(engine, "after the fix")
    assert get_item(engine, item_id).status == COMPLETED and len(get_item(engine, item_id).error_history) == 2
    assert stored(observer, "products", "9")["name"] == REFUSED


def test_the_old_services_export_is_imported_once_and_applied_by_a_replay(store):
    engine, observer = store
    lines = [
        '{"invoice": {"invoice_id": "31", "date": "2024-05-06", "line_items": []}}',
        '{"contact": {"contact_id": "32", "contact_name": "Ali", "contact_type": "vendor"}}',
        '{"item": {"item_id": "33", "name": "Tea"}}',
        '{"item": {"item_id": "33", "name": "Tea"}}',
        "not json at all",
        "",
    ]
    assert import_deliveries(engine, lines) == (3, 1, 1)
    assert import_deliveries(engine, lines) == (0, 5, 0)
    letters = list_dead_letters(engine)
    assert {(letter.entity, letter.zoho_id) for letter in letters} == {
        ("invoices", "31"),
        ("vendors", "32"),
        ("products", "33"),
        (None, None),
    }
    assert replay(engine, all=True) == 4
    stats = drain(engine, "import")
    for name, zoho_id in (("invoices", "31"), ("vendors", "32"), ("products", "33")):
        assert stored(observer, name, zoho_id) is not None and stats[name].inserted == 1
    assert stats["unknown"].failed == 1


def test_an_item_left_processing_by_a_dead_run_is_taken_over_after_the_lease(erp):
    engine, observer = erp
    item_id = deliver(engine, {"item": product("1", "x", T0)})[0]
    assert [item.id for item in claim_ready(engine, 10, "dies")] == [item_id]
    assert claim_ready(engine, 10, "second") == []  # claimed by a live run: left alone
    with observer.begin() as conn:
        conn.execute(sync_queue.update().values(locked_at=datetime.now(UTC) - timedelta(minutes=16)))
    assert peek_ready(engine) == (1, item_id)
    stats = drain(engine, "takes over")
    assert stats["products"].inserted == 1 and get_item(engine, item_id).run_id == "takes over"


def test_a_batch_failing_in_the_writer_stops_the_drain_and_the_batch_claimed_behind_it_goes_back(store, monkeypatch):
    """The drain claims the next batch while the writer writes the last: if that write fails, the next batch
    is handed back untried rather than left PROCESSING until the lease runs out."""
    engine, observer = store
    ids = [deliver(engine, {"item": product(str(n), f"p{n}", T0)})[0] for n in range(6)]
    written = []

    def breaks(engine, batch, stats):
        written.append({item.id for item in batch.items})
        raise RuntimeError("the database went away")

    monkeypatch.setattr(apply_module, "_write_batch", breaks)
    with pytest.raises(RuntimeError, match="went away"):
        drain(engine, "breaks", batch_size=2)

    queue = items(observer)
    assert written == [set(ids[:2])]
    assert {i for i, row in queue.items() if row["status"] == PROCESSING} == set(ids[:2])  # the writer's to fail
    for item_id in ids[2:]:
        assert (queue[item_id]["status"], queue[item_id]["run_id"], queue[item_id]["attempts"]) == (PENDING, None, 0)


def test_pipelined_drains_in_parallel_apply_every_item_once(store):
    engine, observer = store
    ids = [deliver(engine, {"invoice": invoice(str(n), "2024-01-02", T0)})[0] for n in range(400)]
    results: dict[str, dict] = {}
    start = threading.Barrier(2)

    def run(run_id: str) -> None:
        start.wait()
        results[run_id] = drain(engine, run_id, batch_size=25)

    threads = [threading.Thread(target=run, args=(run_id,)) for run_id in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    applied = [results[run_id]["invoices"].items for run_id in ("a", "b") if "invoices" in results[run_id]]
    assert sum(applied) == len(ids)
    assert all(row["status"] == COMPLETED for row in items(observer).values())
    assert row_count(observer, entity_tables["invoices"]) == 400
    assert sum(results[r]["invoices"].inserted for r in results if "invoices" in results[r]) == 400


def test_two_runs_in_parallel_never_take_the_same_item(store):
    engine, observer = store
    ids = [deliver(engine, {"item": product(str(n), f"p{n}", T0)})[0] for n in range(300)]
    ids += [deliver(engine, {"invoice": invoice(str(n), "2024-01-02", T0)})[0] for n in range(300)]
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def run(run_id: str) -> None:
        start.wait()
        while batch := claim_ready(engine, 20, run_id):
            claimed[run_id].extend(item.id for item in batch)
            apply_items(engine, batch, {})

    threads = [threading.Thread(target=run, args=(run_id,)) for run_id in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if observer.dialect.name == "postgresql":  # SQLite serialises claims: one run may well take them all
        assert claimed["a"] and claimed["b"], "both runs should have drained part of the queue"
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)
    queue = items(observer)
    assert all(row["status"] == COMPLETED for row in queue.values())
    for run_id, taken in claimed.items():
        assert {i for i, row in queue.items() if row["run_id"] == run_id} == set(taken)
    assert row_count(observer, entity_tables["products"]) == 300
    assert row_count(observer, entity_tables["invoices"]) == 300


# -- Dagster ---------------------------------------------------------------------------------------------


def dagster_erp(url: str, monkeypatch):
    """A fresh ERP the code location's resources point at."""
    fresh = fresh_erp(url)
    monkeypatch.setenv("TDS_DATABASE_URL", url)
    if fresh.schema:
        monkeypatch.setenv("TDS_DB_SCHEMA", fresh.schema)
    return fresh


# Tests end a drain as soon as the queue is empty instead of watching it for late arrivals.
NO_LINGER = {"ops": {"apply_webhook_queue": {"config": {"linger_seconds": 0}}}}


def materializations(instance: dg.DagsterInstance, name: str) -> list:
    records = instance.fetch_materializations(dg.AssetKey(["zoho", name]), limit=100).records
    return [record.asset_materialization for record in records]


def test_process_webhook_queue_records_materializations_of_the_assets_it_wrote(pg_server_url, monkeypatch):
    engine, observer, _ = dagster_erp(pg_server_url, monkeypatch)
    for n, day in enumerate(("2023-03-04", "2023-03-20", "2023-05-01")):
        deliver(engine, {"invoice": invoice(str(n), day, T0)})
    deliver(engine, {"item": product("1", "Tea", T0)})
    instance = dg.DagsterInstance.ephemeral()
    job = build_defs().resolve_job_def("process_webhook_queue")
    result = job.execute_in_process(run_config=NO_LINGER, instance=instance)
    assert result.success
    [invoices] = [m for m in materializations(instance, "invoices") if m.partition is None]
    assert invoices.metadata["inserted"].value == 3 and invoices.metadata["api_calls"].value == 0
    assert instance.get_materialized_partitions(dg.AssetKey(["zoho", "invoices"])) == {"2023-03-01", "2023-05-01"}
    assert materializations(instance, "products")[0].metadata["inserted"].value == 1
    assert materializations(instance, "customers") == []
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["items"].value == 4
    assert row_count(observer, entity_tables["invoices"]) == 3


def test_a_retried_drain_takes_back_what_its_failed_attempt_held_without_waiting_out_the_lease(
    pg_server_url, monkeypatch
):
    engine, observer, _ = dagster_erp(pg_server_url, monkeypatch)
    for n in range(3):
        deliver(engine, {"item": product(str(n), "Tea", T0)})
    deliver(engine, {"item": product("other", "Tea", T0)})
    run_id = str(uuid.uuid4())
    held = claim_ready(engine, 3, run_id)  # the first attempt claimed, then lost the database before writing
    other = claim_ready(engine, 1, "another-run")  # a live run's: left alone
    job = build_defs().resolve_job_def("process_webhook_queue")
    assert job.execute_in_process(run_config=NO_LINGER, instance=dg.DagsterInstance.ephemeral(), run_id=run_id).success
    assert [get_item(engine, item.id).status for item in held] == [COMPLETED] * 3
    assert get_item(engine, other[0].id).status == PROCESSING
    assert row_count(observer, entity_tables["products"]) == 3


def test_process_webhook_queue_on_sqlite(tmp_path, monkeypatch):
    engine, observer, _ = dagster_erp(f"sqlite:///{tmp_path / 'erp.sqlite'}", monkeypatch)
    deliver(engine, {"item": product("1", "Tea", T0)})
    instance = dg.DagsterInstance.ephemeral()
    job = build_defs().resolve_job_def("process_webhook_queue")
    assert job.execute_in_process(run_config=NO_LINGER, instance=instance).success
    assert materializations(instance, "products") and stored(observer, "products", "1")["name"] == "Tea"


def run_logs(instance: dg.DagsterInstance, result) -> str:
    return "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))


def test_process_single_webhook_and_replay_dead_letters_jobs(pg_server_url, monkeypatch):
    engine, observer, _ = dagster_erp(pg_server_url, monkeypatch)
    monkeypatch.setenv("TDS_WEBHOOK_MAX_ATTEMPTS", "1")
    add_erp_rule(observer)
    good = deliver(engine, {"item": product("1", "Tea", T0)})[0]
    bad = deliver(engine, {"item": product("2", REFUSED, T0)})[0]
    defs, instance = build_defs(), dg.DagsterInstance.ephemeral()

    def single(item_id: int):
        config = {"ops": {"apply_one_webhook": {"config": {"queue_id": item_id}}}}
        job = defs.resolve_job_def("process_single_webhook")
        return job.execute_in_process(run_config=config, instance=instance, raise_on_error=False)

    done = single(good)
    assert done.success and get_item(engine, good).status == COMPLETED
    logs = run_logs(instance, done)
    assert "before: products 1: not in the ERP" in logs and "after: products 1: zoho_id=1" in logs
    failed = single(bad)
    assert not failed.success and get_item(engine, bad).status == DEAD_LETTER
    assert "erp_rule" in run_logs(instance, failed)
    assert not single(good).success  # completed: nothing to process
    drop_erp_rule(observer)
    config = {"ops": {"replay_then_apply": {"config": {"entity": "products", "linger_seconds": 0}}}}
    job = defs.resolve_job_def("replay_dead_letters")
    assert job.execute_in_process(run_config=config, instance=instance).success
    assert get_item(engine, bad).status == COMPLETED and stored(observer, "products", "2") is not None
    assert len(materializations(instance, "products")) == 2
    refused = job.execute_in_process(run_config={}, instance=instance, raise_on_error=False)
    assert not refused.success  # a replay names what it replays


# -- the sensor ------------------------------------------------------------------------------------------


def test_sensor_decision_launches_once_per_backlog_with_a_new_run_key_each_time():
    assert decide(0, None, run_active=False, cursor=None).run_key is None
    assert decide(5, 42, run_active=True, cursor="3").run_key is None
    first = decide(5, 42, run_active=False, cursor=None)
    second = decide(5, 42, run_active=False, cursor=first.cursor)  # the first run failed, same backlog
    assert first.run_key and second.run_key and first.run_key != second.run_key
    skipped = decide(5, 42, run_active=True, cursor=second.cursor)
    assert skipped.cursor == second.cursor
    assert decide(1, 43, run_active=False, cursor=skipped.cursor).run_key not in (first.run_key, second.run_key)


def test_sensor_reads_the_queue_and_the_instance(erp):
    engine, _ = erp
    instance = dg.DagsterInstance.ephemeral()
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    resources = {"erp": ErpDatabase(database_url=url, db_schema=schema)}

    def tick(cursor=None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        return zoho_webhook_queue_sensor(context)

    assert tick().skip_reason
    deliver(engine, {"item": product("1", "Tea", T0)})
    launched = tick()
    [request] = launched.run_requests
    assert request.run_key and launched.cursor == "1"
    run = instance.add_run(
        dg.DagsterRun(job_name="process_webhook_queue", run_id="active", status=dg.DagsterRunStatus.STARTED)
    )
    assert run.status == dg.DagsterRunStatus.STARTED
    while_active = tick(launched.cursor)
    assert not while_active.run_requests and "queued or running" in while_active.skip_reason.skip_message


def test_a_draining_run_applies_webhooks_arriving_while_it_lingers(pg_server_url, monkeypatch):
    engine, observer, _ = dagster_erp(pg_server_url, monkeypatch)
    deliver(engine, {"item": product("1", "Tea", T0)})
    config = {"ops": {"apply_webhook_queue": {"config": {"linger_seconds": 3}}}}
    late = threading.Timer(1.0, lambda: deliver(engine, {"item": product("2", "Coffee", T0)}))
    late.start()
    result = build_defs().resolve_job_def("process_webhook_queue").execute_in_process(run_config=config)
    late.join()
    assert result.success
    assert stored(observer, "products", "2")["name"] == "Coffee"  # arrived a second into the run: same run
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["items"].value == 2
