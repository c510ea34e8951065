"""Static word vectors distilled from the encoder: the embedded backend's fast stage.

The model2vec recipe, without its dependencies: every word of a fixed vocabulary (the most
frequent English and Japanese words of the ``wordfreq`` lists) is embedded once, offline, by
the same multilingual-e5-small encoder the second stage uses; a text's vector is the
frequency-weighted mean of its words' vectors (SIF weights ``a / (a + p(word))``), so rare,
meaningful words count more than function words. Heads over that mean are linear, so each
head folds into one number per word: at run time a text costs a tokenisation and a few
array look-ups (well under a millisecond per 2 KB), not an encoder pass.

Tokenisation: NFKC + casefold; Latin words by regex; runs of kana/kanji are cut by greedy
longest match against the Japanese vocabulary (words up to ``MAX_JA`` characters; a character
not in the vocabulary is skipped).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np

MAX_JA = 8
_LATIN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\u30fc]+")


def cjk_lengths(vocab: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """First character -> lengths (longest first) of the vocabulary's kana/kanji words."""
    lens: dict[str, set[int]] = {}
    for w in vocab:
        if w and _CJK.fullmatch(w) and len(w) <= MAX_JA:
            lens.setdefault(w[0], set()).add(len(w))
    return {c: tuple(sorted(v, reverse=True)) for c, v in lens.items()}


def tokens(text: str, vocab: dict[str, int] | set[str],
           lengths: dict[str, tuple[int, ...]] | None = None) -> list[str]:
    """Vocabulary words of ``text`` in order (English words and Japanese longest matches)."""
    if lengths is None:
        lengths = cjk_lengths(vocab)
    t = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    pos = 0
    for m in _CJK.finditer(t):
        out.extend(_LATIN.findall(t, pos, m.start()))
        run = m.group()
        i, n = 0, len(run)
        while i < n:
            for k in lengths.get(run[i], ()):
                if i + k <= n and run[i : i + k] in vocab:
                    out.append(run[i : i + k])
                    i += k
                    break
            else:
                i += 1
        pos = m.end()
    out.extend(_LATIN.findall(t, pos))
    return [w.replace("’", "'") if "’" in w else w for w in out]


def build_index(words: Iterable[str]) -> dict[str, int]:
    """Word -> row; a word listed twice (English and Japanese lists) keeps its first row."""
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    return index


def sif_weights(freq: np.ndarray, a: float = 1e-4) -> np.ndarray:
    out: np.ndarray = a / (a + freq)
    return out


class StaticModel:
    """Per-word head scores: ``z(text) = sum_w c_w * u_w * S[w] / sum_w c_w * u_w + b`` where
    ``u`` is the word's SIF weight and ``S`` its projection on each head."""

    def __init__(self, words: Iterable[str], weight: np.ndarray, scores: np.ndarray,
                 bias: np.ndarray, labels: list[str]) -> None:
        self.words = list(words)
        self.index = build_index(self.words)
        self.lengths = cjk_lengths(self.index)
        self.weight = weight.astype(np.float32)
        self.scores = scores.astype(np.float32)  # (vocab, heads)
        self.bias = bias.astype(np.float32)
        self.labels = labels

    def ids(self, text: str) -> np.ndarray:
        idx = self.index
        return np.fromiter((idx[w] for w in tokens(text, idx, self.lengths) if w in idx),
                           dtype=np.int64)

    def logits(self, texts: list[str]) -> np.ndarray:
        out = np.tile(self.bias, (len(texts), 1))
        for r, text in enumerate(texts):
            ids = self.ids(text)
            if len(ids):
                u = self.weight[ids]
                out[r] += (u @ self.scores[ids]) / float(u.sum())
        return out

    def predict(self, texts: list[str]) -> np.ndarray:
        """(n, heads) probabilities."""
        z = self.logits(texts)
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p


def mean_vectors(texts: list[str], index: dict[str, int], vecs: np.ndarray,
                 weight: np.ndarray) -> np.ndarray:
    """Training helper: the SIF-weighted mean word vector of each text (zeros if none)."""
    out = np.zeros((len(texts), vecs.shape[1]), np.float32)
    lengths = cjk_lengths(index)
    for r, text in enumerate(texts):
        ids = [index[w] for w in tokens(text, index, lengths) if w in index]
        if ids:
            u = weight[ids]
            out[r] = (u @ vecs[ids].astype(np.float32)) / u.sum()
    return out
