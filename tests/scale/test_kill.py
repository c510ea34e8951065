"""A worker SIGKILLed under load: every intervention a client received has its incident in
the store (records are committed before the response they concern is released)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx

from guardrail.db import make_engine
from guardrail.incidents.store import IncidentStore
from tests.scale.test_workers import _env, _free_port

SECRET = "sk-" + "q9w8e7r6t5" * 3


def test_sigkill_under_load_loses_no_released_incident(tmp_path):
    env = _env(tmp_path)
    (tmp_path / "policies" / "default.yaml").write_text(
        "name: default\nscanners:\n  - type: denylist\n    name: secrets\n"
        "    category: credential\n    action: redact\n    patterns: ['sk-[a-z0-9]{20,}']\n",
        encoding="utf-8")
    port = _free_port()
    root = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "guardrail.cli", "serve", "--port",
                                 str(port)], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(root + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        received: list[list[str]] = []
        errors: list[str] = []
        stop = threading.Event()

        def client(n: int) -> None:
            with httpx.Client(timeout=10) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    stream = i % 2 == 0
                    try:
                        r = c.post(root + "/v1/chat/completions",
                                   headers={"Authorization": "Bearer sk-w"},
                                   json={"model": "guardrail-scripted-1", "stream": stream,
                                         "messages": [{"role": "user", "content":
                                                       f"echo: c{n} r{i} key {SECRET}"}]})
                    except httpx.HTTPError as exc:
                        errors.append(type(exc).__name__)
                        return
                    if r.status_code != 200:
                        continue
                    if stream:
                        ids = [x for line in r.text.splitlines() if '"incident_ids"' in line
                               for x in _ids(line)]
                    else:
                        ids = r.json()["guardrail"]["incident_ids"]
                    assert SECRET not in r.text
                    if ids:
                        received.append(ids)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        while len(received) < 40 and time.monotonic() < deadline + 60:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-load, requests in flight
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len(received) >= 40 and errors  # in-flight requests were cut off
    engine = make_engine(env["GUARDRAIL_DATABASE_URL"])
    try:
        store = IncidentStore(engine)
        missing = [i for ids in received for i in ids if store.get(i) is None]
        assert missing == []
        assert store.verify().ok
    finally:
        engine.dispose()


def _ids(line: str) -> list[str]:
    import json

    data = json.loads(line.removeprefix("data:").strip())
    return list(data.get("guardrail", {}).get("incident_ids", []))
