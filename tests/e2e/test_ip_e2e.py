"""IP near-duplicates end to end: the real server, the openai SDK, a registered corpus."""

from __future__ import annotations

import openai
import pytest

from guardrail.corpus.registry import WorkInput
from guardrail.corpus.service import get_registry
from tests.corpus.conftest import en_text, ja_text
from tests.mocks.clients import collect

POLICY = """
name: default
scanner_timeout_ms: 60000   # behaviour, not speed: a loaded CI machine must not fail it closed
stream:
  holdback_chars: 32
  scan_every_chars: 16
scanners:
  - type: ip
    min_passage_words: 20
    min_passage_cjk_chars: 40
"""

EN = en_text(301, 1500)
JA = ja_text(302, 2000)


@pytest.fixture
def srv(make_server):
    server = make_server(POLICY)
    reg = get_registry(server.state.runtime)
    reg.upsert_corpus("press", "Old Press Ltd", "all rights reserved", "https://press.example")
    server.work_ids = reg.add_works(
        "press", [WorkInput("The English Book", EN), WorkInput("日本の本", JA)]).added
    return server


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)


def ask(server, content: str, **kw):
    return client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": content}], **kw)


@pytest.mark.parametrize(
    ("lang", "copy", "wrap"),
    [
        pytest.param("en", " ".join(EN.split()[400:445]), "Here is the passage: {} Enjoy!",
                     id="english"),
        pytest.param("ja", JA[900:990], "はい、本文です。{}以上です。", id="japanese"),
    ],
)
def test_copied_passage_held_with_evidence(srv, lang, copy, wrap):
    resp = ask(srv, wrap.format(copy))
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "hold"
    assert copy[:30] not in (resp.choices[0].message.content or "")
    inc = srv.store.get(g["incident_ids"][0])
    assert inc["action"] == "hold" and inc["scanner"] == "ip" and inc["category"] == "press"
    assert inc["review_status"] == "open"
    assert inc["evidence"]["response_id"] == g["response_id"]
    found = next(f["evidence"] for f in inc["evidence"]["findings"] if f["scanner"] == "ip")
    assert found["work_id"] == srv.work_ids[0 if lang == "en" else 1]
    assert found["rights_holder"] == "Old Press Ltd"
    assert found["license"] == "all rights reserved" and found["similarity"] == 1.0
    p = found["passages"][0]
    source = EN if lang == "en" else JA
    assert source[p["work"]["start"] : p["work"]["end"]] in copy
    assert p["output"]["excerpt"] in copy


def test_unrelated_output_passes(srv):
    text = en_text(999, 120) + " " + ja_text(998, 150)
    resp = ask(srv, text)
    assert resp.choices[0].message.content == text
    assert resp.model_extra["guardrail"]["decision"] == "allow"


def test_stream_held_before_copied_passage_is_released(srv):
    intro = en_text(500, 80)
    copy = " ".join(EN.split()[800:880])
    released, finish, guard = collect(ask(srv, intro + " " + copy, stream=True))
    assert finish == "content_filter" and guard["decision"] == "hold"
    assert " ".join(copy.split()[:5]) not in released  # none of the copy went out
    assert len(released) > 0 and intro.startswith(released.strip()[:20])
