"""The registered-shingle set: kept in step with registration, deletion and compaction, and
what the IP scanner's stream release bound asks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.registry import WorkInput
from guardrail.corpus.shingles import contains, text_shingles
from guardrail.corpus.text import shingle_hashes, tokenize
from guardrail.scanners.ip import IPConfig, IPScanner
from tests.corpus.conftest import en_text, ja_text

EN, EN2, JA = en_text(40, 800), en_text(41, 800), ja_text(42, 800)
OTHER = "Quokkas and okapis rarely meet tapirs near the glacier, said nobody ever today."


def hits(index: CorpusIndex, text: str) -> np.ndarray:
    return index.registered_shingles(shingle_hashes(tokenize(text), 3))


def test_registered_shingles_follow_add_remove_compact_reopen(tmp_path: Path) -> None:
    idx = CorpusIndex.open(tmp_path / "idx")
    assert not hits(idx, EN).any() and idx.stats()["shingles"] == 0
    idx.add_works([(1, EN), (2, EN2)])
    idx.add_works([(3, JA)])
    assert hits(idx, EN).all() and hits(idx, EN2).all() and hits(idx, JA).all()
    assert not hits(idx, OTHER).any()
    n = idx.stats()["shingles"]
    assert n >= len(set(shingle_hashes(tokenize(EN), 3).tolist()))
    idx.remove_works([2])  # a tombstone: gone from the set at once, before compaction
    assert hits(idx, EN2).mean() < 0.1 and hits(idx, EN).all()
    idx.compact()
    assert idx.stats()["segments"] == 1
    assert hits(idx, EN).all() and hits(idx, JA).all() and hits(idx, EN2).mean() < 0.1
    again = CorpusIndex.open(tmp_path / "idx")  # stored with the segment
    assert again.stats()["shingles"] == idx.stats()["shingles"] < n
    assert hits(again, EN).all() and hits(again, EN2).mean() < 0.1


def test_segments_written_without_shingles_are_shingled_on_open(tmp_path: Path) -> None:
    idx = CorpusIndex.open(tmp_path / "idx")
    idx.add_works([(1, EN), (3, JA)])
    for seg in (tmp_path / "idx").glob("seg-*"):
        (seg / "shingles.npy").unlink()
        (seg / "shingle_offsets.npy").unlink()
    legacy = CorpusIndex.open(tmp_path / "idx")
    assert legacy.stats()["shingles"] == idx.stats()["shingles"] > 0
    assert hits(legacy, EN).all() and hits(legacy, JA).all() and not hits(legacy, OTHER).any()
    legacy.add_works([(4, EN2)])
    legacy.compact()  # the merged segment stores them again
    (seg,) = (tmp_path / "idx").glob("seg-*")
    assert (seg / "shingles.npy").exists()
    assert hits(CorpusIndex.open(tmp_path / "idx"), EN2).all()


def test_another_process_registration_is_seen(tmp_path: Path) -> None:
    reader = CorpusIndex.open(tmp_path / "idx")
    reader.refresh_s = 0.0
    writer = CorpusIndex.open(tmp_path / "idx")
    writer.add_works([(7, EN)])
    assert not hits(reader, EN).any()  # the set answers from the current snapshot ...
    reader.refresh()  # ... which a query's refresh (IP scans run one first) brings up to date
    assert hits(reader, EN).all()


def test_contains_and_text_shingles() -> None:
    a = text_shingles(EN, 3)
    assert np.all(a[:-1] < a[1:])  # sorted, unique
    probe = np.concatenate([a[:5], np.array([0, 2**32 - 1], dtype=np.uint32)])
    got = contains([a[::2], a[1::2], np.zeros(0, np.uint32)], probe)
    assert got[:5].all() and got[5:].sum() == int(0 in a) + int(2**32 - 1 in a)


def test_ip_scanner_bound(registry) -> None:
    runtime = SimpleNamespace(settings=None, engine=registry.engine,
                              services={"corpus_registry": registry})
    runtime.service = lambda name, factory: runtime.services[name]
    scanner = IPScanner(IPConfig(), runtime)  # type: ignore[arg-type]
    scanner.load()
    text = OTHER + " " + " ".join(EN.split()[200:230])
    assert scanner.safe_release(text, len(text)) == len(text)  # nothing registered
    registry.upsert_corpus("books", "Old Press", "CC-BY-4.0")
    registry.add_works("books", [WorkInput("Book", EN)])
    # unrelated text: all but the last shingle, which the next word may complete
    assert scanner.safe_release(OTHER, len(OTHER)) == OTHER.index("ever today")
    assert scanner.safe_release(text, len(text)) == len(OTHER) + 1  # held from the copy
