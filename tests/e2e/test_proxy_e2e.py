"""The real server driven by the official openai SDK, against a real fake upstream."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.mocks.clients import collect

POLICY = """
name: default
stream:
  holdback_chars: 32
  scan_every_chars: 16
scanners:
  - type: denylist
    name: banned
    category: banned_term
    action: block
    terms: ["forbidden-codename", "社外秘"]
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""

BENIGN = "Hello there!  Tabs\tand ünïcödé, 日本語のテキスト, and \"quotes\" stay exactly as sent.\n"
SECRET = "sk-abcdefghijklmnopqrstuvwxyz0123"


@pytest.fixture
def server(make_server):
    return make_server(POLICY)


def sync_client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)


def test_benign_passes_byte_for_byte(server, fake_upstream):
    client = sync_client(server)
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "user", "content": BENIGN}])
    resp = raw.parse()
    assert resp.choices[0].message.content == BENIGN
    assert raw.headers["x-guardrail-decision"] == "allow"
    assert resp.model_extra["guardrail"]["decision"] == "allow"
    # the upstream body is kept byte-for-byte; guardrail only appends its object
    direct = httpx.post(fake_upstream.base_url + "/chat/completions",
                        json={"model": "echo", "messages": [{"role": "user", "content": BENIGN}]})
    assert raw.http_response.content.startswith(direct.content[: direct.content.index(b'"id"')])


def test_benign_stream_passes(server):
    text, finish, guard = collect(sync_client(server).chat.completions.create(
        model="echo", stream=True, messages=[{"role": "user", "content": BENIGN * 3}]))
    assert text == BENIGN * 3
    assert finish == "stop"
    assert guard["decision"] == "allow"


def test_async_client_stream_and_not(server):
    async def go():
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.client_key,
                                    max_retries=0)
        resp = await client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": BENIGN}])
        stream = await client.chat.completions.create(
            model="echo", stream=True, messages=[{"role": "user", "content": BENIGN}])
        text = ""
        async for chunk in stream:
            for ch in chunk.choices:
                text += ch.delta.content or ""
        await client.close()
        return resp.choices[0].message.content, text

    plain, streamed = asyncio.run(go())
    assert plain == BENIGN
    assert streamed == BENIGN


def test_block_non_streaming_writes_incident_first(server):
    resp = sync_client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "The plan is forbidden-codename."}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block"
    assert resp.choices[0].finish_reason == "content_filter"
    assert "forbidden-codename" not in (resp.choices[0].message.content or "")
    inc = server.store.get(g["incident_ids"][0])
    assert inc is not None
    assert inc["action"] == "block" and inc["scanner"] == "banned"
    assert inc["policy_name"] == "default" and len(inc["policy_version"]) == 16
    assert inc["backend"] == "regex"


@pytest.mark.parametrize("text", [
    pytest.param("Our project is called FORBIDDEN-CODENAME internally.", id="case"),
    pytest.param("Our project is ＦＯＲＢＩＤＤＥＮ－ＣＯＤＥＮＡＭＥ internally.", id="fullwidth"),
    pytest.param("この資料は社外秘です。", id="japanese"),
])
def test_block_streaming_content_filter(server, text):
    stream = sync_client(server).chat.completions.create(
        model="echo", stream=True, messages=[{"role": "user", "content": text}])
    released, finish, guard = "", None, {}
    for chunk in stream:
        extra = chunk.model_extra or {}
        for ch in chunk.choices:
            released += ch.delta.content or ""
            finish = ch.finish_reason or finish
        if "guardrail" in extra:
            guard = extra["guardrail"]
            # the incident is committed before the chunk that reports it reaches the client
            assert server.store.get(guard["incident_ids"][0]) is not None
    assert finish == "content_filter"
    assert guard["decision"] == "block"
    lowered = released.lower()
    assert "forbidden" not in lowered and "ｆｏｒｂｉｄｄｅｎ" not in lowered
    assert "社外秘" not in released


def test_redact_non_streaming_and_streaming(server):
    text = f"Use the key {SECRET} carefully; it is yours."
    client = sync_client(server)
    resp = client.chat.completions.create(model="echo",
                                          messages=[{"role": "user", "content": text}])
    assert resp.choices[0].message.content == "Use the key <CREDENTIAL> carefully; it is yours."
    assert resp.model_extra["guardrail"]["decision"] == "redact"
    streamed, finish, guard = collect(client.chat.completions.create(
        model="echo", stream=True, messages=[{"role": "user", "content": text}]))
    assert streamed == "Use the key <CREDENTIAL> carefully; it is yours."
    assert finish == "stop"
    assert guard["decision"] == "redact" and len(guard["incident_ids"]) == 1


def test_every_choice_and_tool_arguments_are_scanned(server):
    client = sync_client(server)
    resp = client.chat.completions.create(
        model="echo", n=2, messages=[{"role": "user", "content": f"key {SECRET}"}],
        extra_body={"fake_tool_args": f'{{"token": "{SECRET}"}}'})
    for ch in resp.choices:
        assert ch.message.content == "key <CREDENTIAL>"
        assert ch.message.tool_calls[0].function.arguments == '{"token": "<CREDENTIAL>"}'
    inc_ids = resp.model_extra["guardrail"]["incident_ids"]
    stages = {server.store.get(i)["stage"] for i in inc_ids}
    assert stages == {"output", "tool_arguments"}


def test_streaming_n2_choices_each_guarded(server):
    stream = sync_client(server).chat.completions.create(
        model="echo", n=2, stream=True, messages=[{"role": "user", "content": f"a {SECRET} b"}])
    texts = {0: "", 1: ""}
    for chunk in stream:
        for ch in chunk.choices:
            texts[ch.index] += ch.delta.content or ""
    assert texts == {0: "a <CREDENTIAL> b", 1: "a <CREDENTIAL> b"}


def test_completions_route(server):
    client = sync_client(server)
    resp = client.completions.create(model="echo", prompt="say forbidden-codename")
    assert resp.choices[0].finish_reason == "content_filter"
    ok = client.completions.create(model="echo", prompt=BENIGN)
    assert ok.choices[0].text == BENIGN
    chunks = list(client.completions.create(model="echo", prompt=f"x {SECRET} y", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "x <CREDENTIAL> y"


def test_models_route(server):
    models = sync_client(server).models.list()
    assert [m.id for m in models.data] == ["echo"]


def test_unknown_fields_pass_through_and_keys_are_separate(server, fake_upstream):
    sync_client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hi"}],
        extra_body={"custom_vendor_field": {"nested": [1, 2]}, "top_k": 7})
    last = fake_upstream.requests[-1]
    assert last["body"]["custom_vendor_field"] == {"nested": [1, 2]}
    assert last["body"]["top_k"] == 7
    assert last["headers"]["authorization"] == "Bearer sk-upstream-secret"


def test_incident_api_lists_filters_and_paginates(server):
    client = sync_client(server)
    for _ in range(3):
        client.chat.completions.create(model="echo",
                                       messages=[{"role": "user", "content": "forbidden-codename"}])
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": SECRET}])
    h = {"Authorization": f"Bearer {server.admin_key}"}
    url = server.root_url + "/v1/guardrail/incidents"
    page1 = httpx.get(url, params={"limit": 2, "action": "block"}, headers=h).json()
    assert len(page1["data"]) == 2 and page1["next_cursor"]
    page2 = httpx.get(url, params={"limit": 2, "action": "block", "cursor": page1["next_cursor"]},
                      headers=h).json()
    assert len(page2["data"]) == 1 and page2["next_cursor"] is None
    redacts = httpx.get(url, params={"action": "redact"}, headers=h).json()["data"]
    assert [r["category"] for r in redacts] == ["credential"]
    one = httpx.get(f"{url}/{redacts[0]['id']}", headers=h).json()
    assert one["id"] == redacts[0]["id"]
    assert SECRET not in str(one)  # the excerpt is redacted
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{url}/inc_missing", headers=h).status_code == 404
    assert httpx.get(url + "/verify", headers=h).json()["ok"] is True


def test_metrics_and_readyz(server):
    sync_client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "forbidden-codename"}])
    metrics = httpx.get(server.root_url + "/metrics").text
    assert 'guardrail_requests_total{route="/v1/chat/completions",status="200"}' in metrics
    assert 'guardrail_decisions_total{action="block",policy="default"}' in metrics
    assert "guardrail_overhead_seconds_bucket" in metrics
    assert "guardrail_upstream_latency_seconds_bucket" in metrics
    assert 'guardrail_incidents_total{action="block",kind="decision"}' in metrics
    assert httpx.get(server.root_url + "/readyz").json() == {"status": "ready"}
    ready = httpx.get(server.root_url + "/v1/guardrail/readyz",
                      headers={"Authorization": f"Bearer {server.admin_key}"}).json()
    assert ready["status"] == "ready"
    scanners = ready["policies"]["default"]["scanners"]
    assert {s["name"] for s in scanners} == {"banned", "secrets"}
    assert all(s["backend"] == "regex" for s in scanners)
    assert httpx.get(server.root_url + "/healthz").json() == {"status": "ok"}


def test_policy_per_key_end_to_end(make_server, tmp_path):
    from guardrail.settings import key_id

    pdir = tmp_path / "multi"
    pdir.mkdir()
    (pdir / "default.yaml").write_text("name: default\nscanners: []\n")
    (pdir / "strict.yaml").write_text(
        "name: strict\nscanners:\n  - type: denylist\n    terms: [hello]\n")
    srv = make_server(None, policy_dir=pdir, api_keys=["k-default", "k-strict"],
                      key_policies={key_id("k-strict"): "strict"})
    msg = [{"role": "user", "content": "hello world"}]
    a = openai.OpenAI(base_url=srv.base_url, api_key="k-default", max_retries=0)
    b = openai.OpenAI(base_url=srv.base_url, api_key="k-strict", max_retries=0)
    assert a.chat.completions.create(model="echo", messages=msg).choices[0].finish_reason == "stop"
    blocked = b.chat.completions.create(model="echo", messages=msg)
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.model_extra["guardrail"]["policy"] == "strict"
