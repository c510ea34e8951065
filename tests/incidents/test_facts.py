"""Facts sealed into incidents come from the proxy, not the client: the tenant from the key's
configuration (a client header is ignored), the model from the upstream's answer."""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrail.incidents.chain import GENESIS, SEALED_FIELDS, record_hash
from guardrail.incidents.store import IncidentDraft
from guardrail.proxy.scripted import completion_object, stream_events
from guardrail.settings import Settings, key_id

POLICY = """
name: default
scanners:
  - {type: denylist, name: banned, terms: [forbidden-codename]}
"""
strict = "name: strict\nscanners:\n  - {type: denylist, name: strict-banned, terms: [hello]}\n"
ACME_KEY, PLAIN_KEY, STRICT_KEY = "sk-acme-key", "sk-plain-key", "sk-strict-key"


async def upstream(request: httpx.Request) -> httpx.Response:
    """Answers with a different model than the one asked for (as aliases do upstream)."""
    body = json.loads(request.content)
    text = body["messages"][-1]["content"]
    served = {**body, "model": "served-" + body["model"]}
    if body.get("stream"):
        return httpx.Response(200, content=stream_events(served, text, chat=True),
                              headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=completion_object(served, text, chat=True))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    from guardrail.app import create_app

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "default.yaml").write_text(textwrap.dedent(POLICY), encoding="utf-8")
    (tmp_path / "p" / "strict.yaml").write_text(strict, encoding="utf-8")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/f.db", policy_dir=tmp_path / "p",
                        upstream_url="http://upstream.test/v1",
                        api_keys=f"{ACME_KEY}:acme,{PLAIN_KEY},{STRICT_KEY}:beta:strict")
    app = create_app(settings, transport=httpx.MockTransport(upstream))
    yield app
    app.state.guardrail.store.engine.dispose()


def client(app: Any, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy.test",
                             headers={"Authorization": f"Bearer {key}"})


async def ask(app: Any, key: str, text: str, *, stream: bool = False,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Send one chat request; return the sealed record of its (single) incident."""
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}
    async with client(app, key) as http:
        r = await http.post("/v1/chat/completions", json=body, headers=headers or {})
    assert r.status_code == 200, r.text
    if stream:
        chunks = [json.loads(line[5:]) for line in r.text.splitlines()
                  if line.startswith("data: {")]
        guard = next(c["guardrail"] for c in reversed(chunks) if "guardrail" in c)
    else:
        guard = r.json()["guardrail"]
    [incident_id] = guard["incident_ids"]
    rec = app.state.guardrail.store.get(incident_id)
    assert rec is not None
    return rec  # type: ignore[no-any-return]


async def test_tenant_comes_from_the_key_and_a_client_header_is_ignored(app: Any) -> None:
    forged = {"x-guardrail-tenant": "someone-else"}
    rec = await ask(app, ACME_KEY, "the forbidden-codename", headers=forged)
    assert rec["tenant"] == "acme" and rec["api_key_id"] == key_id(ACME_KEY)
    rec = await ask(app, PLAIN_KEY, "the forbidden-codename", headers=forged)
    assert rec["tenant"] == "default"  # a plain key belongs to the default tenant
    rec = await ask(app, ACME_KEY, "the forbidden-codename", stream=True, headers=forged)
    assert rec["tenant"] == "acme"


async def test_a_key_configured_with_a_policy_is_governed_by_it(app: Any) -> None:
    rec = await ask(app, STRICT_KEY, "hello there", headers={"x-guardrail-tenant": "acme"})
    assert rec["policy_name"] == "strict" and rec["tenant"] == "beta"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_incident_records_the_model_that_answered(app: Any, stream: bool) -> None:
    rec = await ask(app, PLAIN_KEY, "the forbidden-codename", stream=stream)
    assert rec["upstream_model"] == "served-echo"
    assert rec["requested_model"] == "echo"
    store = app.state.guardrail.store
    assert store.verify().ok
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE incidents SET requested_model = 'other'")
    assert not store.verify().ok  # the requested model is sealed too


def test_api_keys_forms() -> None:
    plain = Settings(api_keys="k1, k2")
    assert [(k.key.get_secret_value(), k.tenant) for k in plain.api_keys] == [
        ("k1", None), ("k2", None)]
    assert plain.tenant_of(plain.api_keys[0]) == "default"
    pairs = Settings(api_keys="k1:acme,k2:beta:strict", default_tenant="shared")
    assert [(k.tenant, k.policy) for k in pairs.api_keys] == [("acme", None), ("beta", "strict")]
    assert pairs.key_policy_map() == {key_id("k2"): "strict"}
    mapping = Settings(api_keys=json.dumps(
        {"k:with:colons": "acme", "k2": {"tenant": "beta", "policy": "strict"}, "k3": None}))
    assert [(k.key.get_secret_value(), k.tenant, k.policy) for k in mapping.api_keys] == [
        ("k:with:colons", "acme", None), ("k2", "beta", "strict"), ("k3", None, None)]
    assert mapping.tenant_of(mapping.api_keys[2]) == "default"
    assert "k2" not in repr(mapping)  # keys stay secret
    with pytest.raises(ValueError, match="configured twice"):
        Settings(api_keys="k1:a,k1:b")
    with pytest.raises(ValueError, match="key_policies says"):
        Settings(api_keys="k1:a:strict", key_policies={key_id("k1"): "default"})


def test_records_sealed_before_requested_model_existed_still_verify() -> None:
    """The hash of a record without ``requested_model`` is the one the old code computed;
    once set, the field is covered."""
    draft = IncidentDraft(request_id="r", system_id="s", policy_name="p", policy_version="v",
                          route="/v1/chat/completions", stage="output", kind="decision",
                          action="block", evidence={}, scanners=[], upstream_model="m")
    fields = {**draft.__dict__, "seq": 1, "created_at": "2025-01-01T00:00:00+00:00"}
    old_fields = [f for f in SEALED_FIELDS if f != "requested_model"]
    canonical = json.dumps({k: fields.get(k) for k in old_fields}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    old = hashlib.sha256((GENESIS + canonical).encode()).hexdigest()
    assert record_hash(GENESIS, fields) == old
    assert record_hash(GENESIS, {**fields, "requested_model": "m"}) != old
