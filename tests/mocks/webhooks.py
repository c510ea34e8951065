"""A local webhook endpoint for decision notices (records each POST)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Receiver:
    url: str = ""
    calls: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    fail_first: int = 0


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A local webhook endpoint: records each POST (body, lower-cased headers); the first
    ``fail_first`` answer 500."""
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            rec.calls.append((body, {k.lower(): v for k, v in self.headers.items()}))
            code = 500 if len(rec.calls) <= rec.fail_first else 200
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{srv.server_address[1]}/hook"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield rec
    srv.shutdown()
    srv.server_close()
