"""The HTTP receiver of Zoho's webhooks (FastAPI + uvicorn): verify, queue in ``tds_sync_queue``, answer.

`app` holds the routes and `serve`, `intake` turns a request into a queue row, `store` writes it (asyncpg on
PostgreSQL, a worker thread on SQLite).
"""

from tds_pipelines.webhooks.app import create_app, serve

__all__ = ["create_app", "serve"]
