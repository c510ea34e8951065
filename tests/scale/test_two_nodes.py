"""Two nodes, one store (issue 15): two proxies with their own local directories (corpus
index, hold key file, outbox) on one PostgreSQL schema and one Redis serve the same corpora
and the same held responses."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.fernet import Fernet

from guardrail.corpus.sync import read_generation
from tests.corpus.conftest import en_text
from tests.people.helpers import token_for
from tests.services import pg_schema, require_redis

POLICY = """
name: default
scanners:
  - type: ip
    min_passage_words: 20
    min_passage_cjk_chars: 40
"""

SYNC_S = 0.5
INDEX_ALLOWANCE_S = 10.0  # indexing one 1,500-word work takes milliseconds; CI can be slow

WORK = en_text(1501, 1500)


@pytest.fixture
def start_nodes(make_server, tmp_path: Path):
    """``start(sync_s)``: (A, B), two servers on one PostgreSQL schema and Redis, each with
    its own index directory, hold key file and outbox; the same hold keys, so either one
    decrypts what the other held."""
    key = Fernet.generate_key().decode()
    namespace = "test-" + uuid.uuid4().hex[:12]  # one deployment: Redis shared by both
    with pg_schema() as url:
        def start(sync_s: float = SYNC_S) -> tuple[Any, Any]:
            shared = {"database_url": url, "redis_url": require_redis(), "hold_keys": [key],
                      "redis_namespace": namespace, "corpus_sync_s": sync_s}

            def own(name: str) -> dict[str, Any]:
                return {"corpus_index_dir": tmp_path / name / "index",
                        "hold_key_file": tmp_path / name / "hold.key",
                        "outbox_dir": tmp_path / name / "outbox"}

            a = make_server(POLICY, **shared, **own("a"))  # migrates the schema
            b = make_server(POLICY, **shared, **own("b"))  # finds it current
            return a, b

        yield start


@pytest.fixture
def two_nodes(start_nodes):
    return start_nodes()


def admin(srv, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{srv.base_url}/guardrail{path}",
                         headers={"Authorization": f"Bearer {srv.admin_key}"}, timeout=30, **kw)


def ask_copy(srv, start: int, words: int = 45) -> dict[str, Any]:
    """An answer that copies ``words`` words of the work: its guardrail block."""
    copy = " ".join(WORK.split()[start:start + words])
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    resp = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"Here it is: {copy} Enjoy!"}])
    return resp.model_extra["guardrail"]  # type: ignore[no-any-return]


def register_on(srv) -> int:
    r = admin(srv, "POST", "/corpora", json={"name": "press", "rights_holder": "Old Press Ltd",
                                             "license": "all rights reserved"})
    assert r.status_code == 201, r.text
    r = admin(srv, "POST", "/corpora/press/works",
              json={"works": [{"title": "The English Book", "text": WORK}]})
    assert r.status_code == 201, r.text
    [wid] = r.json()["added"]
    return int(wid)


def held_on(srv, deadline_s: float) -> tuple[dict[str, Any], float]:
    """Ask ``srv`` for a copy until it holds it (or the deadline passes): the guardrail
    block of the hold and the seconds it took."""
    t0 = time.monotonic()
    while True:
        g = ask_copy(srv, 400)
        elapsed = time.monotonic() - t0
        if g["decision"] == "hold" or elapsed > deadline_s:
            return g, elapsed
        time.sleep(0.05)


def test_a_work_registered_on_one_node_is_held_on_the_other(two_nodes) -> None:
    a, b = two_nodes
    assert ask_copy(b, 400)["decision"] != "hold"  # nothing registered yet
    wid = register_on(a)
    g, elapsed = held_on(b, SYNC_S + INDEX_ALLOWANCE_S)
    assert g["decision"] == "hold", f"B did not hold the copy within {elapsed:.1f} s"
    assert elapsed <= SYNC_S + INDEX_ALLOWANCE_S
    inc = b.store.get(g["incident_ids"][0])
    [finding] = [f for f in inc["evidence"]["findings"] if f["scanner"] == "ip"]
    assert finding["evidence"]["work_id"] == wid
    assert finding["evidence"]["rights_holder"] == "Old Press Ltd"
    # both local indexes record the store's generation (A at once, B after its sync)
    gen = read_generation(a.store.engine)
    for srv in (a, b):
        assert srv.state.runtime.services["corpus_registry"].index.generation == gen
    ready = admin(b, "GET", "/readyz").json()["ready_corpus"]
    assert ready["ok"] and ready["store_generation"] == gen[1] and ready["last_error"] is None
    # a deletion through B stops A from holding it, within the same bound
    assert admin(b, "DELETE", f"/corpora/press/works/{wid}").status_code == 200
    deadline = time.monotonic() + SYNC_S + INDEX_ALLOWANCE_S
    while ask_copy(a, 400)["decision"] == "hold":
        assert time.monotonic() < deadline, "A still holds a deleted work"
        time.sleep(0.05)


def test_a_hold_on_one_node_released_on_the_other_is_fetched_from_the_first(
        two_nodes) -> None:
    a, b = two_nodes
    register_on(a)
    g, _ = held_on(b, SYNC_S + INDEX_ALLOWANCE_S)
    assert g["decision"] == "hold"
    rid, inc = g["response_id"], g["incident_ids"][0]

    def fetch(srv) -> httpx.Response:
        return httpx.get(f"{srv.base_url}/guardrail/responses/{rid}",
                         headers={"Authorization": f"Bearer {srv.client_key}"})

    assert fetch(a).status_code == 202 and fetch(b).json()["status"] == "pending"
    r = httpx.post(f"{a.base_url}/guardrail/incidents/{inc}/decisions",
                   headers={"Authorization": f"Bearer {token_for(a, '佐藤', 'reviewer')}"},
                   json={"decision": "release", "reason": "licensed by Old Press"})
    assert r.status_code == 201 and r.json()["status"] == "released", r.text
    got = fetch(b)
    assert got.status_code == 200, got.text
    body = got.json()
    copy = " ".join(WORK.split()[400:445])
    assert copy in body["choices"][0]["message"]["content"]
    assert body["guardrail"]["decision"] == "released" and body["guardrail"]["response_id"] == rid
    assert b.store.verify().ok


def test_redis_wakes_the_other_node_before_its_next_check(start_nodes) -> None:
    a, b = start_nodes(sync_s=120.0)  # the poll alone would take minutes
    deadline = time.monotonic() + 10
    while (admin(b, "GET", "/readyz").json().get("ready_corpus") or {}).get("wake") != "redis":
        assert time.monotonic() < deadline, "B never subscribed to corpus notices"
        time.sleep(0.05)
    register_on(a)
    g, elapsed = held_on(b, INDEX_ALLOWANCE_S)
    assert g["decision"] == "hold", f"B did not hold the copy within {elapsed:.1f} s"
