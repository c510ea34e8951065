"""A slow client reading a stream: the proxy does not buffer the upstream's answer for it.
Backpressure runs end to end (client socket -> relay -> upstream read), so the upstream is
read only about as fast as the client reads: memory stays bounded by socket buffers."""

from __future__ import annotations

import json
import socket
import time

import pytest

CHUNKS = 4000  # x 8 KB = 32 MB, twice what the socket buffers on the way hold (loopback TCP
# buffers auto-tune to a few MB per socket: about 15 MB sit in them when the reader stalls)


@pytest.mark.slow  # ~30 s: 32 MB through the relay
def test_a_stalled_reader_stalls_the_upstream(make_server, fake_upstream):
    srv = make_server("name: default\nscanners: []\n")
    up = fake_upstream.server.server.config.app.state
    body = json.dumps({"model": "firehose", "stream": True, "fake_chunks": CHUNKS,
                       "messages": [{"role": "user", "content": "go"}]})
    host, port = srv.root_url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    try:
        _stall_then_read(s, host, body, srv, up)
    finally:
        s.close()


def _stall_then_read(s, host, body, srv, up) -> None:
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {srv.client_key}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body.encode())}\r\n\r\n").encode() + body.encode())
    s.recv(1024)  # the response has started
    time.sleep(1.5)  # the client stops reading
    stalled_at = up.firehose_sent
    time.sleep(1.0)
    assert up.firehose_sent == stalled_at  # nothing more is read while nobody reads
    assert stalled_at < CHUNKS * 3 // 4, stalled_at  # only socket buffers' worth was read
    got = 0
    s.settimeout(30)
    while True:  # now read it all: the stream completes
        data = s.recv(1 << 20)
        if not data:
            break
        got += len(data)
        if b"[DONE]" in data[-64:]:
            break
    assert up.firehose_sent == CHUNKS and got > CHUNKS * 8192
