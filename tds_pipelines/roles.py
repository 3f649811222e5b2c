"""The deployed shape: each role a long-lived process of its own (often a host or pod of its own), all sharing
state only through PostgreSQL (Dagster's instance in DAGSTER_HOME's dagster.yaml, the ERP in TDS_DATABASE_URL).
`tds roles` prints them as a Procfile, the same lines as the repository's Procfile; `tds role NAME` runs one (the
container image's entrypoint)."""

from __future__ import annotations

BIND = "--host ${TDS_BIND_HOST:-0.0.0.0}"  # the interface the three servers listen on
DEFINITIONS = "tds_pipelines.definitions"

# role, command: run by a shell, ${VARIABLE:-default} from the role's environment. The webserver and the daemon
# find the code server through deploy/workspace.yaml (TDS_CODE_SERVER_HOST, TDS_CODE_SERVER_PORT).
ROLES = (
    ("code-server", f"dagster code-server start -m {DEFINITIONS} {BIND} --port ${{TDS_CODE_SERVER_PORT:-4000}}"),
    ("webserver", f"dagster-webserver -w deploy/workspace.yaml {BIND} --port ${{TDS_UI_PORT:-3000}}"),
    ("daemon", "dagster-daemon run -w deploy/workspace.yaml"),
    ("receiver", f"tds webhooks {BIND} --port ${{TDS_WEBHOOK_PORT:-8000}}"),
)


def procfile() -> str:
    """The roles as Procfile lines (``role: command``)."""
    return "".join(f"{role}: {command}\n" for role, command in ROLES)


def command_of(role: str) -> str:
    """The command of `role`; ValueError naming the roles when there is no such role."""
    commands = dict(ROLES)
    if role not in commands:
        raise ValueError(f"no role {role!r}: the roles are {', '.join(commands)}")
    return commands[role]
