"""A client that goes away mid-stream: the upstream request is cancelled (no tokens paid for
nobody), and what was found before is still on record."""

from __future__ import annotations

import json
import socket
import time

SECRET = "sk-" + "z1x2c3v4b5" * 3
POLICY = """
name: default
scanners:
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""


def test_client_disconnect_cancels_the_upstream_and_keeps_the_incident(make_server,
                                                                       fake_upstream):
    srv = make_server(POLICY)
    ends = fake_upstream.server.server.config.app.state.stream_ends
    before = len(ends)
    body = json.dumps({"model": "echo", "stream": True, "fake_chunk_delay": 0.05,
                       "messages": [{"role": "user", "content":
                                     f"my key is {SECRET} and " + "then a long tail " * 40}]})
    host, port = srv.root_url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {srv.client_key}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body.encode())}\r\n\r\n").encode() + body.encode())
    got = b""
    while got.count(b"data:") < 3:  # a few chunks have arrived
        got += s.recv(4096)
    s.close()  # the client goes away
    assert SECRET.encode() not in got
    deadline = time.monotonic() + 10
    while len(ends) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ends[before:] == ["closed"]  # the upstream stream was not read to its end
    deadline = time.monotonic() + 5
    rows: list = []
    while not rows and time.monotonic() < deadline:
        rows = [r for r in srv.store.list(limit=10) if r["category"] == "credential"]
        time.sleep(0.05)
    assert rows and rows[0]["action"] == "redact"
    assert srv.store.verify().ok
