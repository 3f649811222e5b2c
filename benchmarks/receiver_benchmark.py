"""Webhook receiver throughput: `tds_pipelines.webhooks.serve` in its own process (one uvicorn worker) on a
throwaway PostgreSQL schema, driven over N keep-alive HTTP/1.1 connections by an asyncio load generator posting
Zoho's documented 3.7 KB invoice with a distinct invoice_id each time (so none is a duplicate). Prints
requests/s, p50/p95/p99 latency, the receiver's CPU, errors, and checks that the queue holds exactly the
accepted deliveries. The baseline is the receiver's single-delivery INSERT with the same arguments in a bare
asyncpg loop over as many connections as its pool holds, into a second schema, for as long; then the ratio.
The receiver itself writes the deliveries waiting at once in one INSERT (group commit): it prints how many
transactions wrote the queue's rows.

The two take turns in slices (receiver, baseline, receiver, ...): the machine is shared and PostgreSQL's
checkpoints come and go, and alternating exposes both to the same conditions.

    python benchmarks/receiver_benchmark.py [--seconds 30] [--connections 32] [--slices 6]

Target: >= 2,000 requests/s, p99 <= 50 ms, ratio >= 0.6.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil
import requests
import uvloop
from _common import DATABASE_URL, free_port, throwaway_schema
from sqlalchemy import create_engine, text

from tds_pipelines.webhooks.store import INSERT_DELIVERY, POOL_SIZE, QueueRow, asyncpg_dsn, insert_arguments

TOKEN = "bench-token"
INVOICE = Path(__file__).resolve().parents[1] / "tds_pipelines_tests/fixtures/zoho_examples/get/invoices.json"
ID_MARK = "@@ID@@"
HEADERS = {"content-type": "application/json", "user-agent": "receiver-benchmark"}


def invoice_body(invoice_id: int, template=[]) -> bytes:  # noqa: B006 - the template, built once
    """Zoho's documented invoice, wrapped as a webhook sends it, with `invoice_id` as its id."""
    if not template:
        record = json.loads(INVOICE.read_text())["invoice"]
        template.extend(json.dumps({"invoice": {**record, "invoice_id": ID_MARK}}).encode().split(ID_MARK.encode()))
    return b"%s98%015d%s" % (template[0], invoice_id, template[1])


class Load:
    """Closed-loop load: every connection sends its next request when the previous answer is complete."""

    def __init__(self, port: int) -> None:
        self.head = (
            f"POST /webhooks/zoho HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {HEADERS['content-type']}"
            f"\r\nUser-Agent: {HEADERS['user-agent']}\r\nX-TDS-Token: {TOKEN}\r\nContent-Length: "
        ).encode()
        self.port = port
        self.ids = itertools.count(1)
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []

    def next_request(self) -> bytes:
        body = invoice_body(next(self.ids))
        return b"%s%d\r\n\r\n%s" % (self.head, len(body), body)

    async def run(self, connections: int, seconds: float) -> None:
        """Drive the receiver over `connections` connections for `seconds`."""
        self.deadline = time.perf_counter() + seconds
        loop = asyncio.get_running_loop()
        closed = [loop.create_future() for _ in range(connections)]
        for done in closed:
            await loop.create_connection(lambda done=done: Client(self, done), "127.0.0.1", self.port)
        await asyncio.wait_for(asyncio.gather(*closed), seconds + 30)

    def answered(self, status: int, seconds: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(seconds)


class Client(asyncio.Protocol):
    def __init__(self, load: Load, closed: asyncio.Future) -> None:
        self.load, self.closed = load, closed
        self.buffer = bytearray()
        self.started = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        if time.perf_counter() >= self.load.deadline:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(self.load.next_request())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        start = head.index(b"content-length:") + len(b"content-length:")
        stop = head.find(b"\r\n", start)
        length = int(head[start : stop if stop >= 0 else None])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        self.load.answered(int(head[9:12]), time.perf_counter() - self.started)
        self.send()

    def connection_lost(self, exc) -> None:
        if exc:
            self.load.errors.append(f"{type(exc).__name__}: {exc}")
        self.closed.set_result(None)


async def bare_inserts(schema: str, connections: int, seconds: float, ids: itertools.count) -> int:
    """The receiver's INSERT, with the arguments it sends for these deliveries, in a loop over `connections`
    connections: what PostgreSQL and asyncpg allow without HTTP, parsing and hashing."""
    deadline = time.perf_counter() + seconds

    async def worker() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(DATABASE_URL), server_settings={"search_path": schema})
        done = 0
        try:
            while time.perf_counter() < deadline:
                n = next(ids)
                row = QueueRow(
                    "PENDING", "webhook", f"{n:064x}", None, HEADERS, "invoices", f"98{n:015d}",
                    payload_text=invoice_body(n).decode(), payload_path=("invoice",),
                )  # fmt: skip
                await conn.fetchrow(INSERT_DELIVERY, *insert_arguments(row))
                done += 1
        finally:
            await conn.close()
        return done

    return sum(await asyncio.gather(*(worker() for _ in range(connections))))


def start_receiver(schema: str, port: int) -> subprocess.Popen:
    environment = {**os.environ, "TDS_DATABASE_URL": DATABASE_URL, "TDS_DB_SCHEMA": schema, "TDS_WEBHOOK_TOKEN": TOKEN}
    command = f"from tds_pipelines.webhooks import serve; serve(port={port})"
    process = subprocess.Popen([sys.executable, "-c", command], env=environment, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            return process
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit("the receiver did not start") from None
            time.sleep(0.2)


def checkpoint() -> None:
    """Start from a fresh checkpoint, whatever ran before."""
    admin = create_engine(DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CHECKPOINT"))
    admin.dispose()


def count_rows(engine) -> tuple[int, int]:
    """The queue's rows and the transactions that wrote them (rows of one statement share its xmin)."""
    with engine.connect() as conn:
        return tuple(conn.execute(text("SELECT count(*), count(DISTINCT xmin::text) FROM tds_sync_queue")).one())


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=1000)[round(share * 1000) - 1] if len(values) > 1 else values[0]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def take_turns(receiver: psutil.Process, port: int, baseline_schema: str, args) -> tuple[Load, int, dict]:
    """Receiver and baseline slices in turn; returns the load, the baseline's inserts, and the CPU seconds the
    receiver and the load generator spent."""
    load, ids, inserts, cpu = Load(port), itertools.count(1), 0, {"receiver": 0.0, "load generator": 0.0}
    generator = psutil.Process()
    for _ in range(args.slices):
        before = cpu_seconds(receiver), cpu_seconds(generator)
        await load.run(args.connections, args.seconds / args.slices)
        cpu["receiver"] += cpu_seconds(receiver) - before[0]
        cpu["load generator"] += cpu_seconds(generator) - before[1]
        inserts += await bare_inserts(baseline_schema, POOL_SIZE, args.seconds / args.slices, ids)
    return load, inserts, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30, help="for each of receiver and baseline")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--slices", type=int, default=6)
    args = parser.parse_args()
    uvloop.install()

    with throwaway_schema() as (engine, schema), throwaway_schema() as (_, baseline_schema):
        port = free_port()
        receiver = start_receiver(schema, port)
        checkpoint()
        try:
            load, inserts, cpu = asyncio.run(take_turns(psutil.Process(receiver.pid), port, baseline_schema, args))
        finally:
            receiver.terminate()
            receiver.wait(timeout=30)
        stored, transactions = count_rows(engine)

    accepted = load.statuses.get(200, 0)
    rate, baseline = accepted / args.seconds, inserts / args.seconds
    ms = [s * 1000 for s in load.latencies]
    p50, p95, p99 = (percentile(ms, share) for share in (0.5, 0.95, 0.99))
    errors = sum(n for status, n in load.statuses.items() if status != 200) + len(load.errors)
    print(f"receiver: {args.connections} connections, {args.seconds:.0f} s in {args.slices} slices, body 3.7 KB")
    print(f"  {rate:,.0f} requests/s accepted ({accepted:,} answered 200)")
    print(f"  latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
    for who, seconds in cpu.items():
        print(f"  {who} CPU {seconds / args.seconds:.0%} of a core, {seconds / len(ms) * 1e6:.0f} us a request")
    print(f"  errors: {errors} {load.statuses if errors else ''} {load.errors[:3]}")
    print(f"  queue rows {stored:,}: {'exactly the accepted count' if stored == accepted else 'MISMATCH'}")
    print(f"  written by {transactions:,} transactions, {stored / max(transactions, 1):.1f} deliveries each")
    print(f"baseline: the same INSERT over {POOL_SIZE} asyncpg connections: {baseline:,.0f} inserts/s")
    print(f"ratio receiver / baseline: {rate / baseline:.2f}")


if __name__ == "__main__":
    main()
