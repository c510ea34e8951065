"""The store unreachable under a fail-open policy: responses keep flowing, their incident
records go to a durable local outbox before release and reach the chain when it is back.
(fail_closed, the default, answers 503: tests/proxy/test_error_boundary.py.)"""

from __future__ import annotations

import asyncio
import json

import httpx

from guardrail.incidents.outbox import Outbox
from tests.mocks.stores import cut_store

SECRET = "sk-" + "a1b2c3d4e5" * 3
POLICY = """
name: default
on_store_error: fail_open
scanners:
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""


def _chat(srv, text: str, stream: bool = False) -> httpx.Response:
    return httpx.post(srv.base_url + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {srv.client_key}"},
                      json={"model": "echo", "stream": stream,
                            "messages": [{"role": "user", "content": text}]})


def test_fail_open_outbox_then_replay(make_server, monkeypatch, tmp_path):
    srv = make_server(POLICY, outbox_dir=tmp_path / "outbox", outbox_replay_s=3600)
    with monkeypatch.context() as m:
        cut_store(srv.store.engine, m)
        r = _chat(srv, f"my key is {SECRET}")
        streamed = _chat(srv, f"and again {SECRET} here", stream=True)
        assert r.status_code == 200 and SECRET not in r.text
        g = r.json()["guardrail"]
        assert g["decision"] == "redact" and g["incident_ids"]
        assert streamed.status_code == 200 and SECRET not in streamed.text
        outbox: Outbox = srv.state.extras["outbox"]
        lines = outbox.path.read_text().splitlines()  # durable before the response left
        assert g["incident_ids"][0] in {json.loads(x)["id"] for x in lines}
        assert outbox.replay(srv.store) == 0  # still down: nothing lost
        assert outbox.pending() == len(lines)
    # the store is back
    assert outbox.replay(srv.store) == len(lines)
    assert outbox.pending() == 0 and not outbox.path.exists()
    rec = srv.store.get(g["incident_ids"][0])
    assert rec["action"] == "redact" and SECRET not in json.dumps(rec)
    assert srv.store.verify().ok
    assert "guardrail_outbox_writes_total 2.0" in httpx.get(srv.root_url + "/metrics").text


def test_replay_skips_records_already_in_the_store(make_server, tmp_path):
    """A crash between appending and removing the file must not seal a record twice."""
    from guardrail.incidents.store import IncidentDraft

    srv = make_server(POLICY, outbox_dir=tmp_path / "outbox", outbox_replay_s=3600)
    d = IncidentDraft(request_id="r", system_id="default", policy_name="default",
                      policy_version="v", route="/v1/chat/completions", stage="output",
                      kind="decision", action="flag", evidence={}, scanners=[])
    outbox: Outbox = srv.state.extras["outbox"]
    outbox.put([d])
    srv.store.append([d])
    assert outbox.replay(srv.store) == 0
    assert srv.store.count() == 1 and srv.store.verify().ok


def test_replay_task_runs_in_the_background(make_server, tmp_path):
    from guardrail.incidents.store import IncidentDraft

    srv = make_server(POLICY, outbox_dir=tmp_path / "outbox", outbox_replay_s=0.05)
    d = IncidentDraft(request_id="r", system_id="default", policy_name="default",
                      policy_version="v", route="/v1/chat/completions", stage="output",
                      kind="decision", action="flag", evidence={}, scanners=[])
    srv.state.extras["outbox"].put([d])

    async def wait() -> None:
        for _ in range(100):
            if srv.store.get(d.id) is not None:
                return
            await asyncio.sleep(0.05)

    asyncio.run(wait())
    assert srv.store.get(d.id) is not None
