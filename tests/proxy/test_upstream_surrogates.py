"""An upstream answer holding an unpaired UTF-16 surrogate (valid JSON, not Unicode text) is
scanned and recorded with the surrogate replaced by U+FFFD, never a 500."""

from __future__ import annotations

import json

import httpx

POLICY = """
name: default
scanners:
  - type: denylist
    name: banned
    action: block
    terms: [forbidden-codename]
"""


def test_scrub_replaces_only_lone_surrogates() -> None:
    from guardrail.proxy.schemas import scrub_surrogates

    data = json.loads('{"a": "x\\ud800y", "b": ["\\ud83d\\ude00 ok", {"\\udfff": 1}], "c": 2}')
    out = scrub_surrogates(data)
    assert out == {"a": "x\ufffdy", "b": ["\U0001f600 ok", {"\ufffd": 1}], "c": 2}
    json.dumps(out, ensure_ascii=False).encode("utf-8")  # storable as UTF-8 now


def test_upstream_json_leaves_clean_bodies_alone() -> None:
    from guardrail.proxy.schemas import upstream_json

    raw = b'{"choices": [{"message": {"content": "plain \\u00e9 text"}}]}'
    assert upstream_json(raw) == json.loads(raw)
    assert upstream_json('{"x": "\\ud800"}') == {"x": "\ufffd"}


def test_surrogate_in_upstream_answer_is_blocked_with_its_incident(make_server) -> None:  # type: ignore[no-untyped-def]
    s = make_server(POLICY)
    body = {"model": "echo", "fake_surrogate": True,
            "messages": [{"role": "user", "content": "the forbidden-codename is here"}]}
    r = httpx.post(s.base_url + "/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {s.client_key}"}, timeout=30)
    assert r.status_code == 200, r.text  # was 500: the incident's hash could not encode it
    out = r.json()
    assert out["choices"][0]["finish_reason"] == "content_filter"
    (iid,) = out["guardrail"]["incident_ids"]
    assert s.store.get(iid)["action"] == "block"
