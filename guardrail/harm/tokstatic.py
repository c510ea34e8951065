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

The cascade's gate reads the token vectors projected to ``PROJ_DIMS`` dimensions. Shipped:
:class:`GateCNN`, a width-3 convolution over the chunk's projected token vectors distilled from
the encoder's decisions (``benchmarks/distill_gate.py``), which sees a few tokens of context
that a bag of tokens cannot; it adds ~4 ms per 2 KB (six chunks) to the linear heads'
~1.1 ms (medians timed here, with another job on the other core). :class:`GateMLP` (one hidden
layer over the projected mean vector, trained on labels by ``benchmarks/train_harm.py``) is
what training starts from and what older heads files hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from guardrail.pipeline.types import detect_language


class Tokenizer(Protocol):
    def content_ids(self, texts: list[str]) -> list[list[int]]: ...


@dataclass
class Gate:
    """What both gates hold: the projected token vectors, the language centres, one hidden
    layer's weights and the gated heads' names; ``arrays`` is their part of the heads file."""

    proj: np.ndarray  # (tokens, PROJ_DIMS), rows aligned with TokenStatic.token_ids
    centre: dict[str, np.ndarray]
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    labels: list[str]
    kind: ClassVar[str] = ""

    def predict_rows(self, rows: list[np.ndarray], weight: np.ndarray, langs: list[str]
                     ) -> np.ndarray:
        """(n, gated heads) probabilities, from each text's token rows and the SIF weights."""
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The gate's arrays in the heads file (``gate_*``); ``from_arrays`` reads them back."""
        cl = sorted(self.centre)
        return {"gate_proj": self.proj.astype(np.float16), "gate_W1": self.W1,
                "gate_b1": self.b1, "gate_W2": self.W2, "gate_b2": self.b2,
                "gate_centre": np.stack([self.centre[k] for k in cl]),
                "gate_langs": np.array("\n".join(cl)),
                "gate_labels": np.array("\n".join(self.labels))}


@dataclass
class GateMLP(Gate):
    """``p = sigmoid(relu((x - centre[lang]) @ W1 + b1) @ W2 + b2)`` per gated head, where
    ``x`` is the weighted mean of the chunk's projected token vectors. W1 (heads, PROJ_DIMS,
    hidden), b1 (heads, hidden), W2 (heads, hidden), b2 (heads,)."""

    kind: ClassVar[str] = "mlp"

    def predict_rows(self, rows: list[np.ndarray], weight: np.ndarray, langs: list[str]
                     ) -> np.ndarray:
        means = np.zeros((len(rows), self.proj.shape[1]), np.float32)
        for i, r in enumerate(rows):
            if len(r):
                u = weight[r]
                means[i] = (u @ self.proj[r]) / float(u.sum())
        return self.predict(means, langs)

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


@dataclass
class GateCNN(Gate):
    """The cascade's gate as a one-layer convolution over the chunk's projected token vectors
    (distilled from the encoder by ``benchmarks/distill_gate.py``): a bag of tokens cannot see
    which words stand next to each other, and its mean dilutes one insult in a long chunk; a
    max-pooled convolution sees both.

    ``h_t = relu(sum_k x_{t+k-1} C_k + c)`` (width 3, zero-padded), then
    ``f = [mean - centre[lang], max_t h_t, weighted mean_t h_t]`` (means SIF-weighted as the
    static heads'), ``p = sigmoid(relu(f W1 + b1) W2 + b2)`` per gated head. W1
    (PROJ_DIMS + 2 * channels, hidden), b1 (hidden,), W2 (hidden, heads), b2 (heads,)."""

    conv: np.ndarray  # (3, PROJ_DIMS, channels)
    conv_b: np.ndarray  # (channels,)
    kind: ClassVar[str] = "cnn"

    def __post_init__(self) -> None:
        # the three taps side by side, (PROJ_DIMS, 3 * channels): one matrix product per call
        # instead of three (about half the time on this machine)
        self._taps = np.ascontiguousarray(np.concatenate(list(self.conv), axis=1))

    def predict_rows(self, rows: list[np.ndarray], weight: np.ndarray, langs: list[str]
                     ) -> np.ndarray:
        """All texts' tokens in one matrix: one product for the convolution's three taps, then
        each text's segment pooled (``reduceat``), so the cost is a few array operations per
        call, not per text."""
        dims, ch = self.conv.shape[1], self.conv.shape[2]
        n = len(rows)
        feats = np.zeros((n, dims + 2 * ch), np.float32)
        centre = np.stack([self.centre.get(lg, self.centre.get("other", np.zeros(dims)))
                           for lg in langs]).astype(np.float32) if n else np.zeros((0, dims))
        feats[:, :dims] = -centre
        lens = np.array([len(r) for r in rows], np.int64)
        full = np.nonzero(lens)[0]
        if len(full):
            ids = np.concatenate([rows[i] for i in full])
            x = self.proj[ids]
            u = weight[ids].astype(np.float32)
            starts = np.concatenate([[0], np.cumsum(lens[full])[:-1]])
            ends = starts + lens[full] - 1
            y = x @ self._taps  # [x_t C_0 | x_t C_1 | x_t C_2]
            left = np.zeros((len(ids), ch), np.float32)  # x_{t-1} C_0, zero at a text's start
            left[1:] = y[:-1, :ch]
            left[starts] = 0.0
            right = np.zeros((len(ids), ch), np.float32)  # x_{t+1} C_2, zero at its end
            right[:-1] = y[1:, 2 * ch:]
            right[ends] = 0.0
            h = np.maximum(left + y[:, ch:2 * ch] + right + self.conv_b, 0.0)
            total = np.add.reduceat(u, starts)[:, None]
            feats[full, :dims] += np.add.reduceat(u[:, None] * x, starts) / total
            feats[full, dims:dims + ch] = np.maximum.reduceat(h, starts)
            feats[full, dims + ch:] = np.add.reduceat(u[:, None] * h, starts) / total
        z = np.maximum(feats @ self.W1 + self.b1, 0.0) @ self.W2 + self.b2
        p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return p

    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "gate_kind": np.array(self.kind), "gate_conv": self.conv,
                "gate_conv_b": self.conv_b}


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
        self.gate_mlp: Gate | None = None  # the cascade's learned gate (GateMLP or GateCNN)

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
        all_rows = []
        for r, ids in enumerate(self.tokenizer.content_ids(texts)):
            rows = self.rows(ids)
            all_rows.append(rows)
            if len(rows):
                u = self.weight[rows]
                out[r] += (u @ self.scores[rows]) / float(u.sum())
            lb = self.lang_bias.get(langs[r])
            if lb is not None:
                out[r] += lb
        g = self.gate_mlp if gate else None
        return out, (g.predict_rows(all_rows, self.weight, langs) if g is not None else None)

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
        extra = self.gate_mlp.arrays() if self.gate_mlp is not None else {}
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
            proj = z["gate_proj"].astype(np.float32)
            centre = dict(zip(cl, z["gate_centre"].astype(np.float32), strict=True))
            W1, b1, W2, b2 = (z[k].astype(np.float32)
                              for k in ("gate_W1", "gate_b1", "gate_W2", "gate_b2"))
            gate_labels = str(z["gate_labels"]).split("\n")
            if "gate_kind" in z and str(z["gate_kind"]) == GateCNN.kind:
                out.gate_mlp = GateCNN(proj, centre, W1, b1, W2, b2, gate_labels,
                                       conv=z["gate_conv"].astype(np.float32),
                                       conv_b=z["gate_conv_b"].astype(np.float32))
            else:
                out.gate_mlp = GateMLP(proj, centre, W1, b1, W2, b2, gate_labels)
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
