from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from guardrail.corpus.detect import detect
from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.registry import CorpusNotFound, CorpusRegistry, WorkInput
from guardrail.corpus.service import read_paths
from tests.corpus.conftest import en_text, ja_text


def test_add_is_idempotent_and_indexed(registry) -> None:
    registry.upsert_corpus("lyrics", "Acme Music", "proprietary", "https://acme.example")
    text = en_text(1, 400)
    r1 = registry.add_works("lyrics", [WorkInput("Song A", text), WorkInput("Same", text)])
    assert len(r1.added) == 1 and r1.duplicates == r1.added and r1.windows > 0
    r2 = registry.add_works("lyrics", [WorkInput("Song A again", "\n" + text + "  \n")])
    assert r2.added == [] and r2.duplicates == r1.added
    [c] = registry.list_corpora()
    assert c["works"] == 1 and c["rights_holder"] == "Acme Music"
    w = registry.get_work(r1.added[0])
    assert w["indexed_at"] and w["windows"] == r1.windows and w["license"] == "proprietary"
    out = " ".join(text.split()[100:140])
    assert detect(registry.index, out)[0].work_id == r1.added[0]


def test_new_corpus_needs_rights_metadata(registry) -> None:
    with pytest.raises(ValueError):
        registry.upsert_corpus("x")
    with pytest.raises(CorpusNotFound):
        registry.add_works("nope", [WorkInput("t", "text")])


def test_update_and_delete(registry) -> None:
    registry.upsert_corpus("docs", "Customer", "confidential")
    works = [WorkInput("a", en_text(2, 300)), WorkInput("b", ja_text(3, 300))]
    res = registry.add_works("docs", works)
    a, b = res.added
    assert registry.work_meta([a])[a]["rights_holder"] == "Customer"
    registry.upsert_corpus("docs", rights_holder="Customer KK")
    assert registry.work_meta([a])[a]["rights_holder"] == "Customer KK"
    assert registry.show("docs")["works"] == 2
    registry.delete_work(b)
    assert registry.index.work_ids() == {a}
    assert registry.delete_corpus("docs") == 1
    assert registry.index.work_ids() == set() and registry.list_corpora() == []


def test_work_meta_survives_a_concurrent_invalidation(registry) -> None:
    """A sync thread clears the metadata cache while a scan is reading it (CI once lost an IP
    finding this way): the scan still gets the rows it read, and they are not cached over
    the invalidation."""
    from contextlib import contextmanager

    registry.upsert_corpus("books", "Press", "CC-BY-4.0")
    ids = registry.add_works("books", [WorkInput("a", en_text(5, 200)),
                                       WorkInput("b", en_text(6, 200))]).added
    real = registry._session

    @contextmanager
    def racing_session():
        with real() as s:
            yield s
        registry._invalidate_meta()  # what _sync_index does, at the worst moment

    registry._session = racing_session
    try:
        meta = registry.work_meta(ids)
    finally:
        registry._session = real
    assert [meta[i]["title"] for i in ids] == ["a", "b"]
    assert registry._meta_cache == {}  # read before the invalidation: not cached
    assert registry.work_meta(ids)[ids[0]]["title"] == "a"
    assert set(registry._meta_cache) == set(ids)  # cached once nothing moved meanwhile


def test_sync_rebuilds_lost_index(registry) -> None:
    registry.upsert_corpus("c", "R", "L")
    text = en_text(4, 500)
    [wid] = registry.add_works("c", [WorkInput("t", text)]).added
    shutil.rmtree(registry.index.directory)
    fresh = CorpusRegistry(registry.engine, CorpusIndex.open(registry.index.directory))
    assert fresh.sync_index() == {"indexed": 1, "removed": 0}
    assert detect(fresh.index, " ".join(text.split()[10:50]))[0].work_id == wid
    assert fresh.sync_index() == {"indexed": 0, "removed": 0}


def test_read_paths(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("alpha text", encoding="utf-8")
    (tmp_path / "d" / "sub" / "b.md").write_text("beta", encoding="utf-8")
    (tmp_path / "d" / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "w.jsonl").write_text(
        json.dumps({"text": "gamma", "title": "G", "id": 7, "year": 1900}) + "\n\n"
        + json.dumps({"text": "delta"}) + "\n",
        encoding="utf-8",
    )
    (tmp_path / "sj.txt").write_bytes("日本語のテキスト".encode("cp932"))
    works = read_paths([tmp_path / "d", tmp_path / "w.jsonl", tmp_path / "sj.txt"])
    assert [w.text for w in works] == ["alpha text", "beta", "gamma", "delta", "日本語のテキスト"]
    assert works[2].external_id == "7" and works[2].meta == {"year": 1900}
    assert works[3].title == "w #3"
    with pytest.raises(ValueError, match="text"):
        (tmp_path / "bad.jsonl").write_text('{"title": "no text"}\n')
        read_paths([tmp_path / "bad.jsonl"])
    with pytest.raises(FileNotFoundError):
        read_paths([tmp_path / "missing.txt"])
