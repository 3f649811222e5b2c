"""A local HTTP server recording the POSTs it receives: where the simulator's webhooks and TDS's alerts go in
tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Capture:
    """What a capture server received, in arrival order: (path, lowercased headers, body); it answers the
    statuses in `answers` first (one per request), then 200."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = list(answers)
        self.received: list[tuple[str, dict, bytes]] = []
        self.lock = threading.Lock()
        self.url = ""

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, _, body in self.received]


@contextmanager
def capture_server(answers: tuple[int, ...] = (), path: str = "/hooks/zoho?source=zoho") -> Iterator[Capture]:
    """A local HTTP server (a thread) recording every POST; `.url` is where to send them."""
    capture = Capture(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with capture.lock:
                capture.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = capture.answers.pop(0) if capture.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    capture.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    try:
        yield capture
    finally:
        server.shutdown()
        server.server_close()
