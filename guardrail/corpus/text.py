"""Normalisation, tokens, shingles and windows: the one text model shared by registration,
query and verification.

A text becomes a stream of *tokens*: a word (a run of letters/digits, NFKC + casefolded;
punctuation is dropped) for space-delimited scripts, or a single character for
Japanese/Chinese (kana, kanji, half-width kana). Mixed text simply mixes both kinds, so no
tokenizer or language switch is needed. Each token keeps its character span in the original
text, so matches map back to exact offsets.

A *shingle* is ``k`` consecutive tokens (hashed to 32 bits, stable across processes).
Windows are measured in *units*: a word counts 2, a CJK character 1 (so 20 English words and
40 Japanese characters are the same size).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9d"
_TOKEN_RE = re.compile(rf"([{_CJK}\uff9e\uff9f])|([^\W_{_CJK}\uff9e\uff9f]+)")

WORD_UNITS = 2
CJK_UNITS = 1

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_C1 = np.uint64(0x9E3779B97F4A7C15)
_C2 = np.uint64(0xC2B2AE3D27D4EB4F)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)


class _TokenHasher:
    """Stable 64-bit token hashes (blake2b), cached per process: vocabularies are small."""

    def __init__(self, max_size: int = 500_000) -> None:
        self._cache: dict[str, tuple[str, int]] = {}
        self._max = max_size

    def __call__(self, raw: str) -> tuple[str, int]:
        hit = self._cache.get(raw)
        if hit is not None:
            return hit
        norm = raw.lower() if raw.isascii() else unicodedata.normalize("NFKC", raw).casefold()
        h = int.from_bytes(hashlib.blake2b(norm.encode(), digest_size=8).digest(), "little")
        if len(self._cache) >= self._max:
            self._cache.clear()
        self._cache[raw] = (norm, h)
        return norm, h


_hasher = _TokenHasher()


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens of one text: hashes, kinds, weights in units and original character spans."""

    hashes: np.ndarray  # uint64, one per token
    cjk: np.ndarray  # bool
    starts: np.ndarray  # int64 char offset in the original text
    ends: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def units(self) -> np.ndarray:
        return np.where(self.cjk, CJK_UNITS, WORD_UNITS).astype(np.int64)

    def span_units(self, i: int, j: int) -> tuple[int, int]:
        """(words, cjk chars) among tokens ``i..j-1``."""
        c = int(self.cjk[i:j].sum())
        return (j - i - c, c)


def _class_table() -> np.ndarray:
    """Per BMP code point: 0 other, 1 word character, 2 CJK (a token on its own)."""
    table = np.zeros(0x10000, dtype=np.uint8)
    for cp in range(0x10000):
        ch = chr(cp)
        if _TOKEN_RE.fullmatch(ch):
            table[cp] = 2 if _TOKEN_RE.match(ch).lastindex == 1 else 1  # type: ignore[union-attr]
    return table


_TABLE: np.ndarray | None = None


def _classes(text: str) -> np.ndarray:
    global _TABLE
    if _TABLE is None:
        _TABLE = _class_table()
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    bmp = cps < 0x10000
    if bmp.all():
        return _TABLE[cps]
    cls = np.zeros(cps.shape[0], dtype=np.uint8)
    cls[bmp] = _TABLE[cps[bmp]]
    for i in np.nonzero(~bmp)[0].tolist():
        cls[i] = 1 if _TOKEN_RE.fullmatch(chr(int(cps[i]))) else 0
    return cls


def tokenize(text: str, offset: int = 0) -> Tokens:
    """Split ``text`` into normalised tokens; spans are shifted by ``offset``.

    Character classes come from a code-point table (vectorised); only the tokens themselves
    are touched in Python (to hash them through the per-process cache).
    """
    cls = _classes(text)
    word = cls == 1
    n = cls.shape[0]
    prev = np.zeros(n, dtype=bool)
    prev[1:] = word[:-1]
    nxt = np.zeros(n, dtype=bool)
    nxt[:-1] = word[1:]
    ws = np.nonzero(word & ~prev)[0]
    we = np.nonzero(word & ~nxt)[0] + 1
    cj = np.nonzero(cls == 2)[0]
    starts = np.concatenate([ws, cj])
    ends = np.concatenate([we, cj + 1])
    is_cjk = np.concatenate([np.zeros(ws.shape[0], bool), np.ones(cj.shape[0], bool)])
    if cj.shape[0] and ws.shape[0]:
        order = np.argsort(starts, kind="stable")
        starts, ends, is_cjk = starts[order], ends[order], is_cjk[order]
    h, get = _hasher, _hasher._cache.get
    toks = [text[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
    hashes = [(get(t) or h(t))[1] for t in toks]
    return Tokens(
        hashes=np.asarray(hashes, dtype=np.uint64),
        cjk=is_cjk,
        starts=starts.astype(np.int64) + offset,
        ends=ends.astype(np.int64) + offset,
    )


def normalised_tokens(text: str) -> list[str]:
    """The normalised token strings (for display and tests)."""
    return [_hasher(m.group(0))[0] for m in _TOKEN_RE.finditer(text)]


def shingle_hashes(tokens: Tokens, k: int = 3) -> np.ndarray:
    """32-bit hash of each run of ``k`` tokens (``len - k + 1`` values; one if shorter).

    Token hashes are combined with wrapping 64-bit arithmetic and finalised with the
    MurmurHash3 64-bit mixer: one vectorised pass, no per-shingle Python hashing.
    """
    h = tokens.hashes
    n = h.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint32)
    if n < k:
        k = n
    m = n - k + 1
    with np.errstate(over="ignore"):
        acc = h[:m].copy()
        for j in range(1, k):
            acc = acc * _C1 + (h[j : j + m] ^ _C2)
        acc ^= acc >> np.uint64(33)
        acc *= _FMIX1
        acc ^= acc >> np.uint64(33)
        acc *= _FMIX2
        acc ^= acc >> np.uint64(33)
    return (acc & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def block_bounds(tokens: Tokens, block_units: int) -> np.ndarray:
    """Token indices where consecutive blocks of ``block_units`` units start (first is 0).

    Block ``b`` holds tokens ``bounds[b]:bounds[b+1]`` (the last runs to the end).
    """
    n = len(tokens)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    cum = np.cumsum(tokens.units) - tokens.units  # units before each token
    total = int(cum[-1] + tokens.units[-1])
    marks = np.arange(0, total, block_units, dtype=np.int64)
    bounds = np.searchsorted(cum, marks, side="left")
    return np.unique(bounds[bounds < n])
