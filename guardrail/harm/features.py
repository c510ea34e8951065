"""Hashed n-gram features for the cheap first stage of the embedded backend (numpy only).

Words (NFKC + casefold) as unigrams and bigrams, character 3-grams of Latin text, and
character 1-3-grams of CJK runs, hashed (crc32) into ``2**bits`` buckets, log-scaled and
L2-normalised. A linear head over these settles clearly benign chunks in well under a
millisecond so that the encoder only sees what might be harmful.
"""

from __future__ import annotations

import re
import unicodedata
import zlib

import numpy as np

_WORD = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]+")


def _grams(text: str) -> list[str]:
    t = unicodedata.normalize("NFKC", text).casefold()
    feats: list[str] = []
    latin = _CJK.sub(" ", t)
    words = _WORD.findall(latin)
    feats.extend(words)
    feats.extend(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    squeezed = " " + " ".join(words) + " "
    feats.extend("#" + squeezed[i : i + 3] for i in range(len(squeezed) - 2))
    for run in _CJK.findall(t):
        for n in (1, 2, 3):
            feats.extend("~" + run[i : i + n] for i in range(len(run) - n + 1))
    return feats


def hash_features(texts: list[str], bits: int = 17) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR parts (data, indices, indptr) of the hashed, log-scaled, L2-normalised features."""
    mask = (1 << bits) - 1
    data: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    indptr = [0]
    for text in texts:
        idx = np.fromiter(
            (zlib.crc32(g.encode("utf-8")) & mask for g in _grams(text)), dtype=np.int64
        )
        uniq, counts = np.unique(idx, return_counts=True)
        vals = np.log1p(counts.astype(np.float32))
        norm = float(np.sqrt((vals * vals).sum())) or 1.0
        data.append(vals / norm)
        indices.append(uniq)
        indptr.append(indptr[-1] + len(uniq))
    return (
        np.concatenate(data) if data else np.zeros(0, np.float32),
        np.concatenate(indices) if indices else np.zeros(0, np.int64),
        np.asarray(indptr, dtype=np.int64),
    )


def linear_scores(texts: list[str], weights: np.ndarray, bias: float, bits: int) -> np.ndarray:
    """Logistic scores of a hashed linear head for each text."""
    data, indices, indptr = hash_features(texts, bits)
    w = weights.astype(np.float32, copy=False)
    contrib = data * w[indices]
    rows = np.repeat(np.arange(len(texts)), np.diff(indptr))
    z = np.bincount(rows, weights=contrib, minlength=len(texts)) + bias
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def to_scipy(texts: list[str], bits: int = 17):  # type: ignore[no-untyped-def]
    """Training helper: the same features as a scipy CSR matrix."""
    from scipy.sparse import csr_matrix

    data, indices, indptr = hash_features(texts, bits)
    return csr_matrix((data, indices, indptr), shape=(len(texts), 1 << bits), dtype=np.float32)
