"""The simulator's HTTP server: Zoho Accounts, Books, Inventory and the admin routes on one port.

Standard library only: `ThreadingHTTPServer`, HTTP/1.1 keep-alive, Content-Length on every answer, daemon
threads. `start_simulator(config)` runs it in the background (tests, benchmarks); `serve(config)` blocks
(the `tds simulator` command).
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from tds_pipelines.simulator import admin, api
from tds_pipelines.simulator.config import SimulatorConfig
from tds_pipelines.simulator.replies import Reply, json_reply
from tds_pipelines.simulator.state import SimulatorState

TOKEN_PATH = "/oauth/v2/token"
MAX_BODY = 20 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SimulatorState) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def version_string(self) -> str:
        return "ZGS"  # Zoho's front servers answer "Server: ZGS"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        if size < 0 or size > MAX_BODY:
            return None
        return self.rfile.read(size) if size else b""

    def _dispatch(self) -> None:
        state = self.server.state
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._send(json_reply(413, {"error": "bad or too large Content-Length"}))
            return
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path.startswith("/admin/"):
                reply = admin.handle(state, self.command, path, body)
            elif path == TOKEN_PATH:
                reply = self._token(parts.query, body)
            else:
                reply = api.handle(state, self.command, path, parts.query, self.headers.get("Authorization"))
        except Exception as exc:  # noqa: BLE001 - a bug in the simulator answers 500, it never hangs a client
            message = f"Internal error ({type(exc).__name__}: {exc})"
            reply = json_reply(500, {"code": 1000, "message": message})
        if state.stop_event.is_set():
            self.close_connection = True
        self._send(reply)

    def _token(self, query: str, body: bytes) -> Reply:
        state = self.server.state
        if self.command != "POST":
            return json_reply(405, {"error": "invalid_request"})
        form = dict(parse_qsl(query, keep_blank_values=True))
        try:
            form.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return json_reply(400, {"error": "invalid_request"})
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        status, payload = state.tokens.refresh(form, f"http://{host}")
        state.stats.token(payload.get("error"))
        return json_reply(status, payload)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


class RunningSimulator:
    """A simulator serving in background threads; `.url` is its base URL. Use as a context manager."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = SimulatorState(config)
        self._server = _Server((config.host, config.port), self.state)
        self.host = config.host if config.host not in ("0.0.0.0", "") else "127.0.0.1"
        self.port = self._server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="zoho-simulator",
            daemon=True,
        )

    def start(self) -> RunningSimulator:
        self._thread.start()
        return self

    @property
    def store(self):  # noqa: ANN201 - Store, kept loose to avoid an import cycle in type checkers
        return self.state.store

    def access_token(self) -> str:
        """An access token issued directly (no refresh call, no throttle): for tests."""
        return self.state.tokens.issue()

    def stop(self) -> None:
        if self.state.stop_event.is_set():
            return
        self.state.close()
        self._server.shutdown()
        with self._server.connections_lock:
            open_connections = list(self._server.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(config: SimulatorConfig | None = None, **overrides: object) -> RunningSimulator:
    """Generate (or load) the data, bind the port and serve in the background."""
    config = config or SimulatorConfig()
    for key, value in overrides.items():
        if not hasattr(config, key):
            raise TypeError(f"unknown simulator setting {key!r}")
        setattr(config, key, value)
    return RunningSimulator(config).start()


def serve(config: SimulatorConfig) -> None:
    """Run until interrupted, printing the base URL (for `tds simulator`)."""
    sim = start_simulator(config)
    counts = sim.state.store.counts()
    print(f"Zoho simulator listening on {sim.url}", flush=True)
    print(
        f"  accounts: {sim.url}/oauth/v2/token  books: {sim.url}/books/v3  inventory: {sim.url}/inventory/v1",
        flush=True,
    )
    print(f"  organization {config.organization_id}; records: {counts}", flush=True)
    try:
        sim.state.stop_event.wait()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        sim.stop()
