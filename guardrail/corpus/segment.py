"""One immutable, memory-mapped piece of the LSH index.

A segment is a directory of ``.npy`` arrays written once and opened with ``mmap_mode="r"``, so
opening costs milliseconds whatever the size and only the pages a query touches become
resident:

- ``keys.npy``  (bands, N) uint32: each band's LSH keys, sorted
- ``ids.npy``   (bands, N) uint32: window number of each sorted key
- ``dir.npy``   (bands, 2^b + 1) uint32: where each key prefix of b bits starts in its band
  (b = log2(N) - 1: ~2 keys per bucket), so a lookup is one or two memory reads instead of a
  20-step binary search over a 4 MB row
- ``win.npy``   (3, N) uint32: work index, first and last+1 character of each window
- ``text.npy``  uint32 code points of the segment's works, back to back (for verification)
- ``works.json`` work ids and where each work's text lies in ``text.npy``
- ``shingles.npy`` uint32 sorted unique shingle hashes of each work, back to back, and
  ``shingle_offsets.npy`` (works + 1) int64: where each work's run starts (for
  :mod:`guardrail.corpus.shingles`; segments written before it are shingled when opened)

Per window that is 8 bytes per band (336 B at 42 bands) + ~2 B per band of directory
(~90 B) + 12 B, plus the text and ~4 B per distinct shingle of each work.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from guardrail.corpus.minhash import IndexParams, band_keys, window_signatures
from guardrail.corpus.shingles import pack, text_shingles, union, work_shingles
from guardrail.corpus.text import tokenize

_MAX_RUN = 64  # entries read per matching key: bounds the cost of a very common band key


@dataclass
class Segment:
    name: str
    keys: np.ndarray
    ids: np.ndarray
    dir: np.ndarray
    win: np.ndarray
    text: np.ndarray
    work_ids: np.ndarray  # int64, per work index
    work_offsets: np.ndarray  # int64, start of each work's text in ``text``
    work_lengths: np.ndarray
    shingle_k: int = 3
    shingles: np.ndarray | None = None  # uint32, each work's sorted unique shingles
    shingle_offsets: np.ndarray | None = None  # int64, works + 1
    _live_sets: dict[bytes, np.ndarray] = field(default_factory=dict, repr=False,
                                                compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def size(self) -> int:
        return int(self.win.shape[1])

    def work_shingles(self, widx: int) -> np.ndarray:
        """Sorted unique shingle hashes of the work with index ``widx``."""
        self._ensure_shingles()
        assert self.shingles is not None and self.shingle_offsets is not None
        a, b = int(self.shingle_offsets[widx]), int(self.shingle_offsets[widx + 1])
        return self.shingles[a:b]

    def _ensure_shingles(self) -> None:
        """Segments written before shingles were stored: shingle their text once, in memory."""
        with self._lock:
            if self.shingles is None or self.shingle_offsets is None:
                per = [text_shingles(self.work_text(w), self.shingle_k)
                       for w in range(self.work_ids.shape[0])]
                self.shingles, self.shingle_offsets = pack(per)

    def live_shingles(self, live: np.ndarray) -> np.ndarray:
        """One sorted array of the shingles of the works ``live`` marks (cached per mask)."""
        key = np.asarray(live, dtype=bool).tobytes()
        hit = self._live_sets.get(key)
        if hit is None:
            self._ensure_shingles()
            hit = union([self.work_shingles(w) for w in np.nonzero(live)[0].tolist()])
            self._live_sets.clear()  # one mask is current at a time
            self._live_sets[key] = hit
        return hit

    @classmethod
    def load(cls, path: Path, preload: bool = True, shingle_k: int = 3) -> Segment:
        """Open a segment. ``preload`` reads the LSH arrays into memory (~350 B per window;
        a query then never waits on a page fault); the text stays memory-mapped."""
        meta = json.loads((path / "works.json").read_text())

        def arr(name: str) -> np.ndarray:
            if preload and name != "text":
                out: np.ndarray = np.load(path / f"{name}.npy")
            else:
                out = np.load(path / f"{name}.npy", mmap_mode="r")
            return out

        stored = (path / "shingles.npy").exists() and (path / "shingle_offsets.npy").exists()
        return cls(
            name=path.name,
            keys=arr("keys"),
            ids=arr("ids"),
            dir=arr("dir"),
            win=arr("win"),
            text=arr("text"),
            work_ids=np.asarray(meta["work_ids"], dtype=np.int64),
            work_offsets=np.asarray(meta["offsets"], dtype=np.int64),
            work_lengths=np.asarray(meta["lengths"], dtype=np.int64),
            shingle_k=shingle_k,
            shingles=np.load(path / "shingles.npy") if stored else None,
            shingle_offsets=np.load(path / "shingle_offsets.npy") if stored else None,
        )

    def work_text(self, widx: int, start: int = 0, end: int | None = None) -> str:
        """Characters ``start:end`` of the work with index ``widx``."""
        length = int(self.work_lengths[widx])
        end = length if end is None else min(end, length)
        start = max(0, start)
        off = int(self.work_offsets[widx])
        return np.asarray(self.text[off + start : off + end]).tobytes().decode("utf-32-le")

    def lookup(self, qkeys: np.ndarray) -> np.ndarray:
        """Windows sharing at least one band key with any query window: (window, hits) pairs
        as two rows of an int64 array. All bands at once: directory bucket, then a few
        vectorised steps through the (sorted) bucket."""
        bands, n = self.keys.shape
        if n == 0:
            return np.zeros((2, 0), dtype=np.int64)
        width = self.dir.shape[1]
        shift = np.uint32(32 - (width - 1).bit_length() + 1)
        q = np.ascontiguousarray(qkeys, dtype=np.uint32)
        slot = (q >> shift).astype(np.int64) + (np.arange(bands, dtype=np.int64) * width)
        flat_dir = self.dir.reshape(-1)
        row = np.arange(bands, dtype=np.int64) * n
        st = (flat_dir[slot] + row).ravel()
        en = (flat_dir[slot + 1] + row).ravel()
        qf = q.ravel()
        keys, ids = self.keys.reshape(-1), self.ids.reshape(-1)
        act = np.nonzero(st < en)[0]
        found: list[np.ndarray] = []
        for _ in range(_MAX_RUN):
            if act.size == 0:
                break
            pos = st[act]
            k = keys[pos]
            qa = qf[act]
            eq = k == qa
            if eq.any():
                found.append(ids[pos[eq]].astype(np.int64))
            st[act] += 1
            act = act[(k <= qa) & (st[act] < en[act])]
        if not found:
            return np.zeros((2, 0), dtype=np.int64)
        wins, hits = np.unique(np.concatenate(found), return_counts=True)
        return np.vstack([wins, hits])


def build_segment(
    directory: Path, works: list[tuple[int, str]], params: IndexParams
) -> tuple[str, dict[int, int]]:
    """Write a segment for ``works`` ((work id, text) pairs); returns its name and the
    number of windows of each work."""
    keys_parts: list[np.ndarray] = []
    win_parts: list[np.ndarray] = []
    texts: list[np.ndarray] = []
    shingles: list[np.ndarray] = []
    offsets: list[int] = []
    lengths: list[int] = []
    off = 0
    for widx, (_, text) in enumerate(works):
        tokens = tokenize(text)
        w = window_signatures(tokens, params, params.stride_units)
        shingles.append(work_shingles(tokens, params.shingle))
        keys_parts.append(band_keys(w.signatures, params))
        win_parts.append(
            np.vstack(
                [np.full(w.char_starts.shape[0], widx), w.char_starts, w.char_ends]
            ).astype(np.uint32)
        )
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        texts.append(cps)
        offsets.append(off)
        lengths.append(int(cps.shape[0]))
        off += int(cps.shape[0])
    keys = (
        np.concatenate(keys_parts) if keys_parts else np.zeros((0, params.bands), np.uint32)
    )
    win = np.concatenate(win_parts, axis=1) if win_parts else np.zeros((3, 0), np.uint32)
    text_arr = np.concatenate(texts) if texts else np.zeros(0, np.uint32)
    ids = [w for w, _ in works]
    name, _ = write_segment(directory, keys, win, text_arr, ids, offsets, lengths, shingles)
    return name, {w: int(p.shape[1]) for w, p in zip(ids, win_parts, strict=True)}


def directory_of(sorted_keys: np.ndarray) -> np.ndarray:
    """Per band, the start of each ``b``-bit key prefix (b = log2(N) - 1, at least 4)."""
    bands, n = sorted_keys.shape
    bits = max(4, min(24, max(n, 1).bit_length() - 1))
    bounds = np.arange((1 << bits) + 1, dtype=np.uint64) << np.uint64(32 - bits)
    out = np.empty((bands, (1 << bits) + 1), dtype=np.uint32)
    for band in range(bands):
        out[band] = np.searchsorted(sorted_keys[band].astype(np.uint64), bounds)
    return out


def write_segment(
    directory: Path,
    keys: np.ndarray,
    win: np.ndarray,
    text: np.ndarray,
    work_ids: list[int],
    offsets: list[int],
    lengths: list[int],
    shingles: list[np.ndarray] | None = None,
) -> tuple[str, int]:
    """Sort ``keys`` ((N, bands), unsorted) per band and write everything atomically.
    ``shingles``: each work's sorted unique shingle hashes (omitted: none stored)."""
    name = f"seg-{uuid.uuid4().hex[:12]}"
    tmp = directory / f".{name}.tmp"
    tmp.mkdir(parents=True)
    try:
        n, bands = keys.shape
        sorted_keys = np.empty((bands, n), dtype=np.uint32)
        ids = np.empty((bands, n), dtype=np.uint32)
        for band in range(bands):  # one band at a time: peak memory ~ one extra band
            col = np.ascontiguousarray(keys[:, band])
            order = np.argsort(col, kind="stable")
            sorted_keys[band] = col[order]
            ids[band] = order
        np.save(tmp / "keys.npy", sorted_keys)
        np.save(tmp / "ids.npy", ids)
        np.save(tmp / "dir.npy", directory_of(sorted_keys))
        np.save(tmp / "win.npy", win.astype(np.uint32))
        np.save(tmp / "text.npy", text.astype(np.uint32))
        if shingles is not None:
            flat, offs = pack(shingles)
            np.save(tmp / "shingles.npy", flat)
            np.save(tmp / "shingle_offsets.npy", offs)
        (tmp / "works.json").write_text(
            json.dumps({"work_ids": work_ids, "offsets": offsets, "lengths": lengths})
        )
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name, int(win.shape[1])


def merge_segments(directory: Path, segments: list[Segment], deleted: set[int]) -> tuple[str, int]:
    """One segment holding every live work of ``segments`` (drops deleted works)."""
    keys_parts, win_parts, texts = [], [], []
    shingles: list[np.ndarray] = []
    work_ids: list[int] = []
    offsets: list[int] = []
    lengths: list[int] = []
    off = 0
    for seg in segments:
        live = np.array([int(w) not in deleted for w in seg.work_ids], dtype=bool)
        remap = np.cumsum(live) - 1 + len(work_ids)
        keep = live[seg.win[0]]
        # keys per window: invert the per-band sort
        n = seg.size
        unsorted = np.empty((n, seg.keys.shape[0]), dtype=np.uint32)
        for band in range(seg.keys.shape[0]):
            unsorted[seg.ids[band], band] = seg.keys[band]
        keys_parts.append(unsorted[keep] if not keep.all() else unsorted)
        w = np.array(seg.win[:, keep], dtype=np.int64)
        w[0] = remap[w[0]]
        win_parts.append(w)
        for widx in np.nonzero(live)[0]:
            o, ln = int(seg.work_offsets[widx]), int(seg.work_lengths[widx])
            texts.append(np.asarray(seg.text[o : o + ln]))
            shingles.append(seg.work_shingles(int(widx)))
            work_ids.append(int(seg.work_ids[widx]))
            offsets.append(off)
            lengths.append(ln)
            off += ln
    bands = segments[0].keys.shape[0] if segments else 0
    keys = np.concatenate(keys_parts) if keys_parts else np.zeros((0, bands), np.uint32)
    win = np.concatenate(win_parts, axis=1) if win_parts else np.zeros((3, 0), np.int64)
    text = np.concatenate(texts) if texts else np.zeros(0, np.uint32)
    return write_segment(directory, keys, win, text, work_ids, offsets, lengths, shingles)
