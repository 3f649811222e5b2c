"""A lost ERP database (PostgreSQL restarting or failing over, a network cut) is worth retrying; Zoho refusing
or a bug is not (retrying those would spend the quota again). Steps that write the ERP run inside
`retried_on_outage`: a lost connection fails the attempt and asks Dagster to retry the step after a wait that
doubles, while the run stays alive; what each attempt wrote is kept (every write is version-guarded and
idempotent), so the retry only finishes the work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg2
from sqlalchemy.exc import DBAPIError

OUTAGE_RETRIES = 5
FIRST_WAIT_SECONDS = 10  # then 20, 40, 80, 160: about five minutes in all, a restart or a failover
# SQLSTATE classes and codes of a lost server: connection exceptions, and an administrator's or a crash's shutdown
_LOST = ("08", "57P01", "57P02", "57P03")


def database_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a PostgreSQL connection lost or refused, not an error of the SQL."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, psycopg2.InterfaceError):
            return True
        if isinstance(seen, psycopg2.OperationalError):
            return seen.pgcode is None or seen.pgcode.startswith(_LOST)
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def retried_on_outage(context: dg.OpExecutionContext | dg.AssetExecutionContext) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if not database_lost(exc):
            raise
        wait = FIRST_WAIT_SECONDS * 2**context.retry_number
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        context.log.warning(f"the ERP database is unreachable ({reason}): retrying this step in {wait} s")
        raise dg.RetryRequested(max_retries=OUTAGE_RETRIES, seconds_to_wait=wait) from exc
