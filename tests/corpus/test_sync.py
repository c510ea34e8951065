"""The store is the source of truth for corpora: its generation moves with every change, each
node's local index records the generation it reflects and syncs when the store's moves."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from guardrail.corpus import sync as corpus_sync
from guardrail.corpus.detect import detect
from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.registry import CorpusRegistry, WorkInput
from guardrail.corpus.sync import CorpusSync, read_generation
from guardrail.runtime import Runtime
from tests.corpus.conftest import en_text
from tests.mocks.servers import ThreadedServer

ADMIN_KEY = "adm-sync-key"

IP_POLICY = """
name: default
scanners:
  - type: ip
    min_passage_words: 20
"""


def node(registry: CorpusRegistry, directory: Path) -> CorpusRegistry:
    """Another node on the same store: its own index directory."""
    return CorpusRegistry(registry.engine, CorpusIndex.open(directory))


def checker(reg: CorpusRegistry) -> CorpusSync:
    runtime = Runtime(settings=None, engine=reg.engine,  # type: ignore[arg-type]
                      services={"corpus_registry": reg})
    return CorpusSync(runtime, 2.0)


def excerpt(text: str, start: int = 100, words: int = 40) -> str:
    return " ".join(text.split()[start:start + words])


def found(reg: CorpusRegistry, text: str) -> list[int]:
    return [m.work_id for m in detect(reg.index, excerpt(text))]


def test_every_change_moves_the_generation_and_the_local_index_follows(registry) -> None:
    store_id, g0 = read_generation(registry.engine)
    assert g0 == 0 and len(store_id) == 32
    registry.upsert_corpus("c", "Holder", "L")
    text = en_text(40, 400)
    [wid] = registry.add_works("c", [WorkInput("t", text)]).added
    registry.add_works("c", [WorkInput("again", text)])  # only a duplicate: no change
    assert read_generation(registry.engine) == (store_id, 2)
    registry.sync_index()  # the first sync records the generation ...
    assert registry.index.generation == (store_id, 2)
    [other] = registry.add_works("c", [WorkInput("u", en_text(41, 400))]).added
    assert registry.index.generation == (store_id, 3)  # ... then this node's own changes
    registry.delete_work(other)
    registry.upsert_corpus("c", license="L2")
    assert registry.index.generation == read_generation(registry.engine) == (store_id, 5)
    assert registry.delete_corpus("c") == 1
    assert registry.index.generation == (store_id, 6) and registry.index.work_ids() == set()
    assert wid not in found(registry, text)


def test_another_node_finds_registrations_and_loses_deletions(registry, tmp_path) -> None:
    b = node(registry, tmp_path / "node-b")
    check = checker(b)
    check.tick()
    assert check.status["in_sync"] and check.status["ok"]
    registry.upsert_corpus("press", "Old Press", "all rights reserved")
    text = en_text(42, 500)
    [wid] = registry.add_works("press", [WorkInput("Book", text)]).added
    assert found(b, text) == []  # not yet: B has not looked
    check.tick()
    assert found(b, text) == [wid]
    assert check.status["store_generation"] == check.status["local_generation"] == 2
    assert check.status["last_sync"] == {"indexed": 1, "removed": 0}
    assert b.work_meta([wid])[wid]["rights_holder"] == "Old Press"
    registry.upsert_corpus("press", rights_holder="New Press")  # metadata: B's cache drops
    check.tick()
    assert b.work_meta([wid])[wid]["rights_holder"] == "New Press"
    registry.delete_work(wid)
    check.tick()
    assert found(b, text) == [] and b.index.work_ids() == set()
    assert check.status["last_sync"] == {"indexed": 0, "removed": 1}
    assert check.status["in_sync"] and check.status["last_error"] is None


def test_a_current_index_is_not_looked_at_again(registry, monkeypatch) -> None:
    registry.upsert_corpus("c", "R", "L")
    registry.add_works("c", [WorkInput("t", en_text(43, 300))])
    registry.sync_index()
    restarted = node(registry, registry.index.directory)
    assert restarted.index.generation == read_generation(registry.engine)

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a current index was re-indexed")

    monkeypatch.setattr(restarted.index, "add_works", boom)
    monkeypatch.setattr(restarted.index, "remove_works", boom)
    monkeypatch.setattr(restarted.index, "work_ids", boom)  # not even compared
    assert restarted.sync_index() == {"indexed": 0, "removed": 0}
    check = checker(restarted)
    check.tick()
    assert check.status["in_sync"] and check.status["last_sync_at"] is None


def test_a_registration_that_crashed_before_indexing_is_indexed_by_the_next_check(
        registry, monkeypatch) -> None:
    registry.upsert_corpus("c", "R", "L")
    registry.sync_index()
    text = en_text(44, 400)

    def crash(_works: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(registry.index, "add_works", crash)
        with pytest.raises(OSError):
            registry.add_works("c", [WorkInput("t", text)])
    assert registry.index.generation != read_generation(registry.engine)
    check = checker(registry)
    check.tick()
    assert check.status["last_sync"] == {"indexed": 1, "removed": 0} and found(registry, text)
    assert registry.get_work(found(registry, text)[0])["indexed_at"]


def test_an_index_of_another_database_is_rebuilt(registry, tmp_path) -> None:
    from guardrail.db import make_engine, upgrade

    registry.upsert_corpus("c", "R", "L")
    mine = en_text(45, 400)
    registry.add_works("c", [WorkInput("t", mine)])
    registry.sync_index()
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = make_engine(url)
    upgrade(url, engine)
    try:
        other = CorpusRegistry(engine, CorpusIndex.open(registry.index.directory))
        assert other.sync_index() == {"indexed": 0, "removed": 0}  # ids alike, texts not
        assert other.index.work_ids() == set() and found(other, mine) == []
        assert other.index.generation == read_generation(engine)
    finally:
        engine.dispose()


def test_workers_sharing_a_directory_never_sync_at_once(registry, tmp_path) -> None:
    one = node(registry, tmp_path / "shared")  # two worker processes of one node
    two = node(registry, tmp_path / "shared")
    registry.upsert_corpus("c", "R", "L")  # through another node
    text = en_text(46, 300)
    [wid] = registry.add_works("c", [WorkInput("t", text)]).added
    with one.index.node_lock():
        assert two.try_sync_index() is None  # busy: the next check tries again
    assert two.try_sync_index() == {"indexed": 1, "removed": 0}
    one.index.reload()
    assert one.index.generation == two.index.generation == read_generation(registry.engine)
    assert one.sync_index() == {"indexed": 0, "removed": 0}  # recorded: nothing to do
    assert found(one, text) == [wid] and one.index.stats()["segments"] == 1


def test_an_unreachable_store_is_reported_and_the_index_serves_on(registry,
                                                                  monkeypatch) -> None:
    registry.upsert_corpus("c", "R", "L")
    text = en_text(47, 400)
    [wid] = registry.add_works("c", [WorkInput("t", text)]).added
    check = checker(registry)
    check.tick()
    assert check.status["ok"]

    def down(_engine: object) -> None:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(corpus_sync, "read_generation", down)
    check.tick()
    st = check.status
    assert st["ok"] is False and "ConnectionRefusedError" in st["last_error"]
    assert st["last_error_at"] and st["local_generation"] == 2
    assert found(registry, text) == [wid]
    monkeypatch.undo()
    check.tick()
    assert st["ok"] and st["last_error"]  # the last error stays, with its time


def _serve(tmp_path: Path) -> tuple[ThreadedServer, CorpusRegistry]:
    """The real app on the store and index directory of ``tmp_path``."""
    from guardrail.app import create_app
    from guardrail.settings import Settings

    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "default.yaml").write_text(IP_POLICY, encoding="utf-8")
    app = create_app(Settings(
        database_url=f"sqlite:///{tmp_path}/shared.db", policy_dir=tmp_path / "policies",
        admin_key=ADMIN_KEY, api_keys=["sk-c"], corpus_index_dir=tmp_path / "index",
        corpus_sync_s=0.2))
    reg = app.state.guardrail.runtime.services["corpus_registry"]
    reg.start_sync().join(10)  # the IP scanner's start-up sync
    return ThreadedServer(app).start(), reg


def _segments(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir() if p.is_dir()}


def test_a_restarted_server_does_not_reindex_and_says_so_at_readyz(tmp_path,
                                                                   monkeypatch) -> None:
    srv, reg = _serve(tmp_path)
    try:
        reg.upsert_corpus("c", "R", "L")
        reg.add_works("c", [WorkInput("t", en_text(48, 400))])
    finally:
        srv.stop()
        reg.engine.dispose()
    before = _segments(tmp_path / "index")
    calls: list[object] = []  # indexing, or even comparing the works with the store's
    add, ids = CorpusIndex.add_works, CorpusIndex.work_ids
    monkeypatch.setattr(CorpusIndex, "add_works",
                        lambda self, works: calls.append(works) or add(self, works))
    monkeypatch.setattr(CorpusIndex, "work_ids", lambda self: calls.append(0) or ids(self))
    srv, reg = _serve(tmp_path)  # the same store and directory: a restart
    try:
        assert calls == [] and _segments(tmp_path / "index") == before
        assert reg.index.generation == read_generation(reg.engine)
        deadline = time.monotonic() + 10
        while True:
            r = httpx.get(f"{srv.url}/v1/guardrail/readyz",
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            corpus = r.json().get("ready_corpus") or {}
            if corpus.get("checked_at") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert corpus["ok"] and corpus["in_sync"] and corpus["local_generation"] == 2
        assert corpus["store_generation"] == 2 and corpus["sync_s"] == 0.2
        assert corpus["last_error"] is None and calls == []
        assert httpx.get(f"{srv.url}/readyz").json() == {"status": "ready"}
    finally:
        srv.stop()
        reg.engine.dispose()


async def test_wake_without_redis_or_with_redis_down_just_waits() -> None:
    from guardrail.corpus.sync import Wake

    for url in (None, "redis://127.0.0.1:1/0"):  # unset; nothing listens there
        status: dict[str, object] = {"wake": "poll"}
        wake = Wake(url, status)
        await wake.notify()  # best effort: never raises
        t0 = time.monotonic()
        await wake.wait(0.2)
        assert time.monotonic() - t0 >= 0.19 and status["wake"] == "poll"
        await wake.aclose()


async def test_a_store_that_never_answers_is_reported(registry, monkeypatch) -> None:
    import asyncio
    import threading
    from types import SimpleNamespace

    from guardrail.corpus.sync import sync_forever

    release = threading.Event()
    calls: list[int] = []

    def hangs(engine: object) -> object:
        calls.append(1)
        release.wait(10)
        return real(engine)

    real = corpus_sync.read_generation
    monkeypatch.setattr(corpus_sync, "read_generation", hangs)
    state = SimpleNamespace(
        runtime=Runtime(settings=None, engine=registry.engine,  # type: ignore[arg-type]
                        services={"corpus_registry": registry}),
        settings=SimpleNamespace(corpus_sync_s=0.05, redis_url=None), extras={})
    task = asyncio.create_task(sync_forever(state, stall_s=0.3))  # type: ignore[arg-type]
    try:
        st: dict[str, object] = {}
        for _ in range(100):
            await asyncio.sleep(0.05)
            st = state.extras["ready_corpus"]
            if st["ok"] is False:
                break
        assert st["ok"] is False and st["last_error"] == "store: no answer for 0.3 s"
        assert st["busy"]["what"] == "store" and calls == [1]  # no second check meanwhile
        release.set()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if st["ok"] and st["busy"] is None:
                break
        assert st["ok"] and st["busy"] is None and st["in_sync"]
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
