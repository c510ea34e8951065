"""Contextual static token vectors: the embedded backend's first stage (issue 11's tiers).

Every token of multilingual-e5-small's vocabulary that occurs in the training corpus gets one
vector: the average of its hidden states *in context* over that corpus (the encoder's own
representation of the token, averaged over its uses), computed once offline by
``benchmarks/harm_corpus.py``. A text's vector is the weighted mean (SIF weights
``a / (a + p(token))``) of its tokens' vectors. The heads over that mean are linear, so each
folds into one number per token: at run time a chunk costs a tokenisation and a few array
look-ups (4-11 ms per 2 KB with sentence zoom, by machine), not an encoder pass. Unlike the
word-level static stage it replaces, it works for Japanese (the encoder's tokenizer, no word
list).

Per-language centring (the mean benign vector of the language, subtracted before the heads)
folds into a per-language bias.

For the cascade's gate, a small MLP (:class:`GateMLP`) reads the same mean vector projected to
``PROJ_DIMS`` dimensions (the projection is linear, so the mean of projected token vectors is
the projection of the mean): a little more separation than the linear heads where that pays
(Japanese, on the validation split), at a few microseconds more per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from guardrail.pipeline.types import detect_language


class Tokenizer(Protocol):
    def content_ids(self, texts: list[str]) -> list[list[int]]: ...


@dataclass
class GateMLP:
    """``p = sigmoid(relu((x - centre[lang]) @ W1 + b1) @ W2 + b2)`` per gated head, where
    ``x`` is the weighted mean of the chunk's projected token vectors."""

    proj: np.ndarray  # (tokens, PROJ_DIMS), rows aligned with TokenStatic.token_ids
    centre: dict[str, np.ndarray]
    W1: np.ndarray  # (heads, PROJ_DIMS, hidden)
    b1: np.ndarray  # (heads, hidden)
    W2: np.ndarray  # (heads, hidden)
    b2: np.ndarray  # (heads,)
    labels: list[str]

    def predict(self, means: np.ndarray, langs: list[str]) -> np.ndarray:
        x = means.astype(np.float32, copy=True)
        for i, lang in enumerate(langs):
            c = self.centre.get(lang, self.centre.get("other"))
            if c is not None:
                x[i] -= c
        h = np.maximum(np.einsum("nd,kdh->nkh", x, self.W1) + self.b1[None], 0.0)
        z = np.einsum("nkh,kh->nk", h, self.W2) + self.b2[None]
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p


class TokenStatic:
    """``z_h(text) = sum_t u_t S[t, h] / sum_t u_t + b_h + lang_bias[lang, h]``."""

    def __init__(self, token_ids: np.ndarray, weight: np.ndarray, scores: np.ndarray,
                 bias: np.ndarray, labels: list[str],
                 lang_bias: dict[str, np.ndarray] | None = None,
                 tokenizer: Tokenizer | None = None) -> None:
        self.token_ids = token_ids.astype(np.int64)
        self.weight = weight.astype(np.float32)
        self.scores = scores.astype(np.float32)  # (tokens, heads)
        self.bias = bias.astype(np.float32)
        self.labels = list(labels)
        self.lang_bias = {k: np.asarray(v, np.float32) for k, v in (lang_bias or {}).items()}
        size = int(self.token_ids.max()) + 1 if len(self.token_ids) else 1
        self._row = np.full(size, -1, np.int64)
        self._row[self.token_ids] = np.arange(len(self.token_ids))
        self.tokenizer = tokenizer
        self.gate_mlp: GateMLP | None = None

    def rows(self, ids: list[int]) -> np.ndarray:
        a = np.asarray(ids, np.int64)
        a = a[a < len(self._row)]
        r = self._row[a]
        return r[r >= 0]

    def logits(self, texts: list[str], langs: list[str] | None = None,
               gate: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Linear head logits (n, heads) and, with ``gate``, the gate MLP's probabilities
        (n, gated heads), from one tokenisation."""
        assert self.tokenizer is not None, "set a tokenizer first"
        langs = langs or [detect_language(t) for t in texts]
        out = np.tile(self.bias, (len(texts), 1))
        mlp = self.gate_mlp if gate else None
        means = np.zeros((len(texts), mlp.proj.shape[1]), np.float32) if mlp else None
        for r, ids in enumerate(self.tokenizer.content_ids(texts)):
            rows = self.rows(ids)
            if len(rows):
                u = self.weight[rows]
                total = float(u.sum())
                out[r] += (u @ self.scores[rows]) / total
                if means is not None and mlp is not None:
                    means[r] = (u @ mlp.proj[rows]) / total
            lb = self.lang_bias.get(langs[r])
            if lb is not None:
                out[r] += lb
        gated = mlp.predict(means, langs) if mlp is not None and means is not None else None
        return out, gated

    def predict(self, texts: list[str], langs: list[str] | None = None) -> np.ndarray:
        """(n, heads) probabilities of the linear heads."""
        z, _ = self.logits(texts, langs)
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p

    def predict_with_gate(self, texts: list[str], langs: list[str]
                          ) -> tuple[np.ndarray, np.ndarray | None]:
        """Linear probabilities and the gate MLP's (None without one)."""
        z, gated = self.logits(texts, langs, gate=True)
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p, gated

    def arrays(self) -> dict[str, np.ndarray]:
        langs = sorted(self.lang_bias)
        mlp = self.gate_mlp
        extra: dict[str, np.ndarray] = {}
        if mlp is not None:
            cl = sorted(mlp.centre)
            extra = {"gate_proj": mlp.proj.astype(np.float16), "gate_W1": mlp.W1,
                     "gate_b1": mlp.b1, "gate_W2": mlp.W2, "gate_b2": mlp.b2,
                     "gate_centre": np.stack([mlp.centre[k] for k in cl]),
                     "gate_langs": np.array("\n".join(cl)),
                     "gate_labels": np.array("\n".join(mlp.labels))}
        return {**extra,
            "tok_ids": self.token_ids.astype(np.int32),
            "tok_weight": self.weight.astype(np.float16),
            "tok_scores": self.scores.astype(np.float16),
            "tok_bias": self.bias,
            "tok_lang_bias": np.stack([self.lang_bias[k] for k in langs]) if langs
            else np.zeros((0, len(self.labels)), np.float32),
            "tok_langs": np.array("\n".join(langs)),
        }

    @classmethod
    def from_arrays(cls, z: dict[str, np.ndarray] | np.lib.npyio.NpzFile, labels: list[str],
                    tokenizer: Tokenizer | None = None) -> TokenStatic:
        langs = [x for x in str(z["tok_langs"]).split("\n") if x]
        out = cls(z["tok_ids"], z["tok_weight"], z["tok_scores"], z["tok_bias"], labels,
                  dict(zip(langs, z["tok_lang_bias"], strict=True)), tokenizer)
        if "gate_W1" in z:
            cl = [x for x in str(z["gate_langs"]).split("\n") if x]
            out.gate_mlp = GateMLP(
                z["gate_proj"].astype(np.float32),
                dict(zip(cl, z["gate_centre"].astype(np.float32), strict=True)),
                z["gate_W1"].astype(np.float32), z["gate_b1"].astype(np.float32),
                z["gate_W2"].astype(np.float32), z["gate_b2"].astype(np.float32),
                str(z["gate_labels"]).split("\n"))
        return out


def mean_token_vectors(id_lists: list[list[int]], row_of: np.ndarray, vecs: np.ndarray,
                       weight: np.ndarray) -> np.ndarray:
    """Training helper: the weighted mean token vector of each text (zeros if none)."""
    out = np.zeros((len(id_lists), vecs.shape[1]), np.float32)
    for r, ids in enumerate(id_lists):
        a = np.asarray(ids, np.int64)
        a = a[a < len(row_of)]
        rows = row_of[a]
        rows = rows[rows >= 0]
        if len(rows):
            u = weight[rows]
            out[r] = (u @ vecs[rows]) / u.sum()
    return out
