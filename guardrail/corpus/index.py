"""The corpus index: memory-mapped LSH segments under one directory, shared by the IP scanner
and the registry within a process, and by processes through ``manifest.json``.

Writers (registration, deletion, compaction) build a new segment beside the live ones, then
publish it by rewriting the manifest atomically (``os.replace``, under an ``flock``); readers
hold an immutable snapshot, so a query never sees half a registration and registration never
blocks a query. A process notices another process's publication on its next query (one
``stat`` at most every ``refresh_s``).

The manifest also records which state of the store the index reflects (``store_id`` and
``generation``, see guardrail/corpus/sync.py); whoever brings the index in step with the
store holds :meth:`CorpusIndex.node_lock`, one per directory across threads and processes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.corpus.minhash import IndexParams, band_keys, window_signatures
from guardrail.corpus.segment import Segment, build_segment, merge_segments
from guardrail.corpus.shingles import contains
from guardrail.corpus.text import Tokens

log = logging.getLogger("guardrail.corpus")

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Snapshot:
    segments: tuple[Segment, ...] = ()
    deleted: frozenset[int] = frozenset()
    # per segment: bool mask over its works, True where the work is live
    live: tuple[np.ndarray, ...] = ()
    mtime_ns: int = 0
    works: int = 0  # live works
    # per segment: sorted unique shingle hashes of its live works
    shingles: tuple[np.ndarray, ...] = ()
    # the store state this index reflects: (store_id, generation), None if never synced
    generation: tuple[str, int] | None = None

    @property
    def windows(self) -> int:
        return sum(s.size for s in self.segments)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A region of one registered work that LSH says resembles part of the output."""

    work_id: int
    segment: Segment
    work_index: int
    start: int  # character range in the work
    end: int
    votes: int

    def text(self, pad: int = 0) -> tuple[str, int]:
        s = max(0, self.start - pad)
        return self.segment.work_text(self.work_index, s, self.end + pad), s


@dataclass
class CorpusIndex:
    directory: Path
    params: IndexParams = field(default_factory=IndexParams)
    max_segments: int = 8
    refresh_s: float = 1.0
    preload: bool = True

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self._snap = Snapshot()
        self._write_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._checked = 0.0
        self._node_lock = threading.Lock()
        self.load_seconds = 0.0

    # ----------------------------------------------------------------- loading
    @classmethod
    def open(
        cls, directory: str | Path, params: IndexParams | None = None, preload: bool = True
    ) -> CorpusIndex:
        idx = cls(Path(directory), params or IndexParams(), preload=preload)
        t0 = time.perf_counter()
        idx.directory.mkdir(parents=True, exist_ok=True)
        idx._reload(force=True)
        idx.load_seconds = time.perf_counter() - t0
        return idx

    def _manifest(self) -> dict[str, Any]:
        path = self.directory / MANIFEST
        if not path.exists():
            return {"params": self.params.as_dict(), "segments": [], "deleted": []}
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def _reload(self, force: bool = False) -> None:
        path = self.directory / MANIFEST
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = 0
        if not force and mtime == self._snap.mtime_ns:
            return
        data = self._manifest()
        if data.get("params", self.params.as_dict()) != self.params.as_dict():
            raise ValueError(
                f"index at {self.directory} was built with other parameters; "
                "rebuild it (guardrail corpus reindex)"
            )
        old = {s.name: s for s in self._snap.segments}
        segs = tuple(
            old.get(n) or Segment.load(self.directory / n, self.preload, self.params.shingle)
            for n in data["segments"]
        )
        deleted = frozenset(int(w) for w in data.get("deleted", []))
        live = tuple(
            np.array([int(w) not in deleted for w in s.work_ids], dtype=bool) for s in segs
        )
        works = sum(int(m.sum()) for m in live)
        shingles = tuple(s.live_shingles(m) for s, m in zip(segs, live, strict=True))
        gen = data.get("generation")
        generation = (str(data["store_id"]), int(gen)) if gen is not None else None
        self._snap = Snapshot(segs, deleted, live, mtime, works, shingles, generation)

    def refresh(self) -> None:
        """Pick up another process's publication. Never waits: while one thread loads a new
        segment, other queries go on with the current snapshot."""
        now = time.monotonic()
        if now - self._checked >= self.refresh_s and self._reload_lock.acquire(blocking=False):
            try:
                self._checked = now
                self._reload()
            finally:
                self._reload_lock.release()

    def reload(self) -> None:
        """Pick up another process's publication now (one ``stat``; waits for a reload in
        progress). Blocking: not for the event loop."""
        with self._reload_lock:
            self._checked = time.monotonic()
            self._reload()

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    @property
    def generation(self) -> tuple[str, int] | None:
        """``(store_id, generation)`` of the store state this index was last brought in step
        with (None: never, or rebuilt since)."""
        return self._snap.generation

    def work_ids(self) -> set[int]:
        snap = self._snap
        out: set[int] = set()
        for s in snap.segments:
            out.update(int(w) for w in s.work_ids)
        return out - set(snap.deleted)

    def stats(self) -> dict[str, Any]:
        snap = self._snap
        return {
            "directory": str(self.directory),
            "segments": len(snap.segments),
            "windows": snap.windows,
            "works": snap.works,
            "deleted_works": len(snap.deleted),
            "shingles": sum(int(a.shape[0]) for a in snap.shingles),
            "load_seconds": round(self.load_seconds, 4),
            "generation": snap.generation[1] if snap.generation else None,
            "params": self.params.as_dict(),
        }

    # ----------------------------------------------------------------- writing
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        with self._write_lock, self._reload_lock, open(self.directory / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._reload(force=True)
                yield self._manifest()
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextmanager
    def node_lock(self, blocking: bool = True) -> Iterator[bool]:
        """Held while bringing the index in step with the store (a sync, a registration's
        indexing): one holder per directory, across threads and processes, so two workers
        sharing the directory never index the same work twice. Yields whether it was
        acquired (always, when ``blocking``)."""
        if not self._node_lock.acquire(blocking=blocking):
            yield False
            return
        try:
            with open(self.directory / ".sync.lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                    got = True
                except BlockingIOError:
                    got = False
                try:
                    yield got
                finally:
                    if got:
                        fcntl.flock(fh, fcntl.LOCK_UN)
        finally:
            self._node_lock.release()

    def set_generation(self, store_id: str, generation: int,
                       expect: tuple[str, int] | None = None) -> bool:
        """Record that the index reflects the store at ``generation``; with ``expect``, only
        if it currently records exactly that (a registration advancing it by one)."""
        with self._locked() as data:
            if expect is not None and self._snap.generation != expect:
                return False
            data["store_id"], data["generation"] = store_id, int(generation)
            self._publish(data)
        return True

    def _publish(self, data: dict[str, Any]) -> None:
        data["params"] = self.params.as_dict()
        tmp = self.directory / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.directory / MANIFEST)
        self._reload(force=True)

    def add_works(self, works: list[tuple[int, str]]) -> dict[int, int]:
        """Index ``(work_id, text)`` pairs as one new segment; returns windows per work."""
        if not works:
            return {}
        name, per = build_segment(self.directory, works, self.params)
        with self._locked() as data:
            ids = {w for w, _ in works}
            data["deleted"] = [w for w in data.get("deleted", []) if w not in ids]
            data["segments"].append(name)
            self._publish(data)
        if len(self._snap.segments) > self.max_segments:
            self.compact()
        return per

    def remove_works(self, work_ids: list[int] | set[int]) -> None:
        """Tombstone works: queries skip them at once, compaction drops their windows."""
        if not work_ids:
            return
        with self._locked() as data:
            data["deleted"] = sorted(set(data.get("deleted", [])) | {int(w) for w in work_ids})
            self._publish(data)

    def compact(self) -> None:
        """Merge every segment into one, dropping deleted works."""
        with self._locked() as data:
            snap = self._snap
            if not snap.segments:
                return
            name, _ = merge_segments(self.directory, list(snap.segments), set(snap.deleted))
            old = [s.name for s in snap.segments]
            data["segments"] = [name]
            data["deleted"] = []
            self._publish(data)
        for n in old:
            shutil.rmtree(self.directory / n, ignore_errors=True)

    def clear(self) -> None:
        """Empty the index; it then reflects no store state until the next sync."""
        with self._locked() as data:
            old = list(data["segments"])
            data["segments"], data["deleted"] = [], []
            data.pop("generation", None)
            data.pop("store_id", None)
            self._publish(data)
        for n in old:
            shutil.rmtree(self.directory / n, ignore_errors=True)

    # ----------------------------------------------------------------- querying
    def registered_shingles(self, hashes: np.ndarray) -> np.ndarray:
        """Which of ``hashes`` (shingle hashes, ``params.shingle`` tokens each) occur in any
        live registered work: a boolean mask, from the current snapshot (never reloads, so
        it is safe to call on the event loop; microseconds for a stream window)."""
        return contains(self._snap.shingles, hashes)

    def candidates(self, tokens: Tokens, max_works: int = 8) -> list[Candidate]:
        """Regions of registered works whose windows collide with the output's windows.

        Output windows use the finer ``query_stride_units`` so one lies close to any
        registered window the output copies. Neighbouring hit windows of a work are merged
        into one region; the ``max_works`` works with most collisions are returned.
        """
        self.refresh()
        snap = self._snap
        if not snap.segments or len(tokens) == 0:
            return []
        w = window_signatures(tokens, self.params, self.params.query_stride_units)
        qkeys = band_keys(w.signatures, self.params)
        per_work: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for si, seg in enumerate(snap.segments):
            found = seg.lookup(qkeys)
            if found.shape[1] == 0:
                continue
            win = np.asarray(seg.win[:, found[0]], dtype=np.int64)
            ok = snap.live[si][win[0]]
            for widx, s, e, v in zip(
                win[0][ok], win[1][ok], win[2][ok], found[1][ok], strict=True
            ):
                per_work.setdefault((si, int(widx)), []).append((int(s), int(e), int(v)))
        ranked = sorted(per_work.items(), key=lambda kv: -sum(v for _, _, v in kv[1]))
        out: list[Candidate] = []
        for (si, widx), regions in ranked[:max_works]:
            seg = snap.segments[si]
            regions.sort()
            cs, ce, cv = regions[0]
            for s, e, v in regions[1:]:
                if s <= ce + (ce - cs):  # touching or close: one region
                    ce, cv = max(ce, e), cv + v
                    continue
                out.append(Candidate(int(seg.work_ids[widx]), seg, widx, cs, ce, cv))
                cs, ce, cv = s, e, v
            out.append(Candidate(int(seg.work_ids[widx]), seg, widx, cs, ce, cv))
        return out
