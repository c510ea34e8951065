"""Vectorised MinHash over overlapping windows, bit-compatible with datasketch.

Signatures use datasketch 2's default ``affine32`` scheme and its permutations
(``MinHash(num_perm, seed).permutations``): a window's signature here equals
``datasketch.MinHash(num_perm, seed, hashfunc=lambda h: h).update_batch(shingle_hashes)``
(tested). What differs is the cost: each shingle is permuted once for all windows that contain
it (blocks of ``stride`` units; a window is the minimum over consecutive blocks), so the
overlap of windows costs nothing extra.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import numpy as np

from guardrail.corpus.text import Tokens, block_bounds, shingle_hashes

_FMIX32 = (np.uint32(16), np.uint32(2246822507), np.uint32(13), np.uint32(3266489909))
_BAND_C = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 4096  # shingles permuted at once (keeps the working set in cache)


@dataclass(frozen=True)
class IndexParams:
    """Everything that must match between an index on disk and the code querying it."""

    num_perm: int = 128
    bands: int = 42
    rows: int = 3
    shingle: int = 3
    window_units: int = 40  # 20 words or 40 CJK characters
    stride_units: int = 20  # registered windows overlap by half
    query_stride_units: int = 8  # output windows: finer stride, so one aligns with a stored one
    seed: int = 1

    def __post_init__(self) -> None:
        if self.bands * self.rows > self.num_perm:
            raise ValueError("bands * rows must not exceed num_perm")
        for s in (self.stride_units, self.query_stride_units):
            if self.window_units % s:
                raise ValueError("window_units must be a multiple of each stride")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch 2's affine32 permutations (``MinHash._init_permutations``), drawn the same
    way so that importing datasketch (~1 s) is not needed to serve; a test checks equality."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(hv: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2 = _FMIX32
    with np.errstate(over="ignore"):
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        out: np.ndarray = hv ^ (hv >> s1)
        return out


@dataclass(frozen=True, slots=True)
class Windows:
    """Signatures of one text's windows and where each window lies in the text."""

    signatures: np.ndarray  # (W, num_perm) uint32
    char_starts: np.ndarray  # (W,) int64
    char_ends: np.ndarray  # (W,) int64


def window_signatures(tokens: Tokens, params: IndexParams, stride_units: int) -> Windows:
    """MinHash signatures of windows of ``params.window_units`` every ``stride_units``."""
    n = len(tokens)
    empty = Windows(
        np.zeros((0, params.num_perm), np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    )
    if n == 0:
        return empty
    k = min(params.shingle, n)
    shingles = fmix32(shingle_hashes(tokens, k))
    m = shingles.shape[0]
    bounds = block_bounds(tokens, stride_units)
    bounds = bounds[bounds < m]
    a, b = permutations(params.num_perm, params.seed)
    nb = bounds.shape[0]
    blocks = np.empty((nb, params.num_perm), dtype=np.uint32)
    # permute shingles chunk by chunk (chunks end on block boundaries)
    bi = 0
    with np.errstate(over="ignore"):
        while bi < nb:
            bj = int(np.searchsorted(bounds, bounds[bi] + _CHUNK, side="left"))
            bj = max(bj, bi + 1)
            lo = int(bounds[bi])
            hi = int(bounds[bj]) if bj < nb else m
            phv = shingles[lo:hi, None] * a[None, :] + b[None, :]
            blocks[bi:bj] = np.minimum.reduceat(phv, bounds[bi:bj] - lo, axis=0)
            bi = bj
    per_win = params.window_units // stride_units
    if nb <= per_win:
        sig = blocks.min(axis=0, keepdims=True)
        return Windows(sig, tokens.starts[:1].copy(), tokens.ends[-1:].copy())
    nw = nb - per_win + 1
    sig = blocks[:nw].copy()
    for d in range(1, per_win):
        np.minimum(sig, blocks[d : d + nw], out=sig)
    first_tok = bounds[:nw]
    last_tok = np.empty(nw, dtype=np.int64)
    last_tok[:-1] = np.minimum(bounds[per_win : per_win + nw - 1] + k - 2, n - 1)
    last_tok[-1] = n - 1
    return Windows(sig, tokens.starts[first_tok], tokens.ends[last_tok])


def band_keys(signatures: np.ndarray, params: IndexParams) -> np.ndarray:
    """(W, bands) uint32 LSH keys: each band's ``rows`` values hashed together."""
    w = signatures.shape[0]
    r = params.rows
    sig = signatures[:, : params.bands * r].astype(np.uint64).reshape(w, params.bands, r)
    with np.errstate(over="ignore"):
        acc = np.arange(params.bands, dtype=np.uint64)[None, :] + np.uint64(1)
        for j in range(r):
            acc = (acc ^ sig[:, :, j]) * _BAND_C
            acc ^= acc >> np.uint64(29)
    return (acc >> np.uint64(32)).astype(np.uint32)
