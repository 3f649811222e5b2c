"""The receiver's routes: ``POST /webhooks/zoho`` queues a delivery and answers once it is committed;
``GET /health`` reports TDS's health as `tds status` does, and the old service's monitoring routes
(``/api/tds/monitoring/...``) keep the dashboards built on it working. Nothing is applied here: the queue's
job does that."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from tds_pipelines import settings
from tds_pipelines.erp.db import checked_schema, normalize_url
from tds_pipelines.status import (
    InstanceUnavailable,
    collect_status,
    monitoring_health,
    scheduler_jobs,
    status_engine,
)
from tds_pipelines.webhooks.intake import (
    TooLarge,
    delivery_row,
    query_params,
    read_bounded,
    request_headers,
    signature_refusal,
    token_refusal,
    too_large_row,
)
from tds_pipelines.webhooks.store import PostgresQueue, QueueUnavailable, SqliteQueue

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1024 * 1024
RECEIVE_PATH = "/webhooks/zoho"

_RECEIVE_DOCS = {
    "summary": "Queue one Zoho webhook delivery",
    "openapi_extra": {
        "parameters": [
            {"name": "entity", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "event", "in": "query", "required": False, "schema": {"type": "string", "enum": ["deleted"]}},
            {"name": "token", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "X-TDS-Token", "in": "header", "required": False, "schema": {"type": "string"}},
            {"name": "X-Zoho-Webhook-Signature", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": {"JSONString": {"type": "string"}}}
                },
            },
        },
    },
    "responses": {
        200: {"description": "queued and committed: {id, duplicate}"},
        400: {"description": "unusable body (kept as a dead letter)"},
        401: {"description": "missing or wrong token or signature (nothing kept)"},
        413: {"description": "body over TDS_WEBHOOK_MAX_BYTES (a stub is kept)"},
        503: {"description": "database unavailable: retry"},
    },
}

_STATUS_DOCS = {503: {"description": "the ERP database is unavailable: `detail` says why in one line"}}


class _Receiver(FastAPI):
    """FastAPI with one shortcut: a POST to RECEIVE_PATH goes straight to its endpoint, skipping the
    middleware stack, routing and dependency solving, which cost about as much as the delivery itself
    (measured: 3,860 -> 5,520 deliveries/s). FastAPI still documents that route (registered as usual, it
    serves deliveries behind a path prefix) and serves every other one."""

    answer_delivery: Callable[[Scope, Receive], Awaitable[Response]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == RECEIVE_PATH:
            response = await self.answer_delivery(scope, receive)
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    database_url: str | None = None,
    schema: str | None = None,
    token: str | None = None,
    secret: str | None = None,
    max_bytes: int | None = None,
) -> FastAPI:
    """The receiver as an ASGI app. Unset arguments come from the environment: TDS_DATABASE_URL,
    TDS_DB_SCHEMA, TDS_WEBHOOK_TOKEN, TDS_WEBHOOK_SECRET, TDS_WEBHOOK_MAX_BYTES (default 1 MiB)."""
    url = normalize_url(database_url or settings.database_url())
    token = token or os.environ.get("TDS_WEBHOOK_TOKEN") or None
    secret = secret or os.environ.get("TDS_WEBHOOK_SECRET") or None
    limit = max_bytes or int(os.environ.get("TDS_WEBHOOK_MAX_BYTES") or DEFAULT_MAX_BYTES)
    if url.startswith("sqlite"):
        queue = SqliteQueue(url)
    else:
        queue = PostgresQueue(url, checked_schema(schema or settings.db_schema()))
    status_db = status_engine(url, schema)  # the status routes' SQLAlchemy engine, used in worker threads

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if token is None:
            log.warning("TDS_WEBHOOK_TOKEN is unset: every delivery will be refused with 401")
        yield
        await queue.close()
        status_db.dispose()

    app = _Receiver(title="TDS webhook receiver", lifespan=lifespan)

    async def deliver(scope: Scope, receive: Receive) -> JSONResponse:
        # The raw body, no model: parse_delivery reads it once (a pydantic dict parameter: 143 requests/s).
        headers, query = request_headers(scope), query_params(scope)
        refused = token_refusal(token, headers, query)
        if refused:
            return JSONResponse({"detail": refused}, status_code=401)
        body = await read_bounded(receive, headers, limit)
        if isinstance(body, TooLarge):
            row = too_large_row(body, headers, limit)
            stored = await queue.store(row)
            return JSONResponse({"detail": row.last_error, "id": stored.id}, status_code=413)
        refused = signature_refusal(secret, query, headers, body)
        if refused:
            return JSONResponse({"detail": refused}, status_code=401)
        row = delivery_row(body, headers, query.get("entity") or None, query.get("event"))
        stored = await queue.store(row)
        if row.status == "DEAD_LETTER":
            return JSONResponse({"detail": row.last_error, "id": stored.id}, status_code=400)
        return JSONResponse({"id": stored.id, "duplicate": stored.duplicate})

    async def answer_delivery(scope: Scope, receive: Receive) -> Response:
        try:
            return await deliver(scope, receive)
        except QueueUnavailable as exc:
            return _unavailable(exc)
        except ClientDisconnect:  # gone mid-body: nothing stored, nobody to answer, no traceback to log
            return Response(status_code=400)

    @app.post(RECEIVE_PATH, **_RECEIVE_DOCS)
    async def queue_delivery(request: Request) -> Response:
        return await answer_delivery(request.scope, request.receive)

    @app.get("/health", summary="TDS's health, as `tds status --json` reports it", responses=_STATUS_DOCS)
    async def health() -> JSONResponse:
        return await _answer(lambda: {"status": "ok", **collect_status(status_db)})

    @app.get(
        "/api/tds/monitoring/health",
        summary="The old service's queue statistics: healthy, degraded or unhealthy as the queue's checks judge",
        responses=_STATUS_DOCS,
    )
    async def monitoring_queue_health() -> JSONResponse:
        return await _answer(lambda: monitoring_health(status_db))

    @app.get(
        "/api/tds/monitoring/scheduler/jobs",
        summary="The old service's job list: each schedule and sensor, its state, last and next tick",
        responses={503: {"description": "the Dagster instance of DAGSTER_HOME is unavailable"}},
    )
    async def monitoring_scheduler_jobs() -> JSONResponse:
        return await _answer(scheduler_jobs)

    app.answer_delivery = answer_delivery
    return app


def _unavailable(exc: QueueUnavailable) -> JSONResponse:
    # Only the error's class: a message could quote the database URL.
    return JSONResponse({"detail": f"the queue database is unavailable ({exc}); retry later"}, status_code=503)


async def _answer(report: Callable[[], dict]) -> JSONResponse:
    """`report()` computed in a worker thread (it blocks); 503 with a one-line reason when a database it reads
    is unreachable, naming only the error's class: a message could quote a URL and its password."""
    try:
        return JSONResponse(await run_in_threadpool(report))
    except SQLAlchemyError as exc:
        detail = f"the ERP database is unavailable ({type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__})"
    except InstanceUnavailable as exc:
        detail = f"the Dagster instance is unavailable ({exc})"
    log.warning("%s", detail)
    return JSONResponse({"detail": f"{detail}; retry later"}, status_code=503)


def serve(host: str = "127.0.0.1", port: int = 8000, **app_options) -> None:
    """Run the receiver with uvicorn until interrupted (``tds webhooks``); `app_options` go to create_app.

    One worker: uvloop and httptools (picked by "auto" when installed) carry it past 2,000 deliveries a
    second, and the access log stays off since it would print a ``?token=`` query."""
    app = create_app(**app_options)
    # No proxy-header rewriting either: the receiver never looks at the client's address.
    uvicorn.run(app, host=host, port=port, loop="auto", http="auto", access_log=False, proxy_headers=False)
