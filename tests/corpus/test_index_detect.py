from __future__ import annotations

import random
from pathlib import Path

import pytest

from guardrail.corpus.detect import DetectRules, detect
from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.minhash import IndexParams
from tests.corpus.conftest import en_text, ja_text

EN = en_text(10, 3000)
EN2 = en_text(11, 3000)
JA = ja_text(12, 4000)


def edit(text: str, rate: float, seed: int) -> str:
    rng = random.Random(seed)
    words = text.split()
    for _ in range(round(rate * len(words))):
        words[rng.randrange(len(words))] = "zebra"
    return " ".join(words)


@pytest.fixture
def index(tmp_path: Path) -> CorpusIndex:
    idx = CorpusIndex.open(tmp_path / "idx")
    idx.add_works([(1, EN), (2, EN2)])
    idx.add_works([(3, JA)])
    return idx


def passage(text: str, start_word: int, n: int) -> str:
    return " ".join(text.split()[start_word : start_word + n])


def test_copied_english_passage_found_with_spans(index: CorpusIndex) -> None:
    copy = passage(EN, 1000, 40)
    out = f"Sure! Here is the text you asked for: {copy} Hope that helps."
    [m] = detect(index, out)
    assert m.work_id == 1 and m.similarity == 1.0
    p = m.longest
    assert out[p.out_start : p.out_end] == copy
    assert EN[p.work_start : p.work_end] == copy
    assert m.passages[0].work_excerpt == copy[:240]
    assert 0.5 < m.coverage < 1.0


def test_edited_passage_found(index: CorpusIndex) -> None:
    out = edit(passage(EN2, 2000, 60), 0.1, seed=3)
    [m] = detect(index, out)
    assert m.work_id == 2 and 0.6 < m.similarity < 1.0


def test_japanese_passage_found(index: CorpusIndex) -> None:
    copy = JA[1500:1580]
    out = "以下が本文です：" + copy + "。以上。"
    [m] = detect(index, out)
    assert m.work_id == 3
    assert JA[m.longest.work_start : m.longest.work_end] in copy
    assert m.longest.cjk_chars >= 70


@pytest.mark.parametrize(
    "out",
    [
        pytest.param(en_text(99, 300), id="unrelated-en"),
        pytest.param(ja_text(98, 600), id="unrelated-ja"),
        pytest.param(passage(EN, 500, 12), id="too-short"),
    ],
)
def test_no_match(index: CorpusIndex, out: str) -> None:
    assert detect(index, out) == []


def test_min_passage_is_a_rule(index: CorpusIndex) -> None:
    out = passage(EN, 500, 30)
    assert detect(index, out, DetectRules(min_passage_words=20))
    assert not detect(index, out, DetectRules(min_passage_words=40))


def test_persists_across_reopen(index: CorpusIndex, tmp_path: Path) -> None:
    again = CorpusIndex.open(tmp_path / "idx")
    assert again.stats()["windows"] == index.stats()["windows"] > 0
    assert detect(again, passage(EN, 100, 40))[0].work_id == 1


def test_remove_then_compact(index: CorpusIndex, tmp_path: Path) -> None:
    out = passage(EN, 100, 40)
    index.remove_works([1])
    assert detect(index, out) == []
    assert detect(index, JA[100:200])[0].work_id == 3
    before = index.stats()["segments"]
    index.compact()
    assert before == 2 and index.stats()["segments"] == 1
    assert index.work_ids() == {2, 3}
    assert detect(index, JA[100:200])[0].work_id == 3
    assert detect(index, passage(EN2, 10, 40))[0].work_id == 2
    assert len(list((tmp_path / "idx").glob("seg-*"))) == 1


def test_other_process_publication_is_seen(index: CorpusIndex, tmp_path: Path) -> None:
    other = CorpusIndex.open(tmp_path / "idx")
    extra = en_text(55, 400)
    other.add_works([(9, extra)])
    index.refresh_s = 0.0
    assert detect(index, passage(extra, 50, 40))[0].work_id == 9


def test_params_mismatch_refused(index: CorpusIndex, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="other parameters"):
        CorpusIndex.open(tmp_path / "idx", IndexParams(bands=32, rows=4))


def test_queries_do_not_wait_for_writers(index: CorpusIndex) -> None:
    import threading

    out: list[int] = []
    index.refresh_s = 0.0
    with index._write_lock, index._reload_lock:  # a registration is publishing
        t = threading.Thread(target=lambda: out.extend(
            m.work_id for m in detect(index, passage(EN, 200, 40))))
        t.start()
        t.join(timeout=30)
    assert out == [1]
