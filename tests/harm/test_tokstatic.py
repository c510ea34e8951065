"""The contextual static token stage: folded linear heads over mean token vectors."""

from __future__ import annotations

import numpy as np
import pytest

from guardrail.harm.tokstatic import TokenStatic, mean_token_vectors


class FakeTokenizer:
    def __init__(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        return [[self.vocab.get(w, 999) for w in t.split()] for t in texts]


def test_folded_heads_equal_mean_vector_then_linear_head() -> None:
    rng = np.random.default_rng(0)
    vocab = {"you": 3, "idiot": 17, "are": 5, "nice": 40, "バカ": 41}
    tok_ids = np.array(sorted(vocab.values()))
    vecs = rng.normal(size=(len(tok_ids), 8)).astype(np.float32)
    weight = rng.uniform(0.2, 1.0, size=len(tok_ids)).astype(np.float32)
    W, b = rng.normal(size=(8, 2)), np.array([0.1, -0.3])
    centre = rng.normal(size=8)
    model = TokenStatic(tok_ids, weight, vecs @ W, b, ["any", "toxic"],
                        {"en": -(centre @ W)}, FakeTokenizer(vocab))
    texts = ["you are idiot", "バカ nice unknown", "nothing known here"]
    row_of = np.full(64, -1)
    row_of[tok_ids] = np.arange(len(tok_ids))
    X = mean_token_vectors(FakeTokenizer(vocab).content_ids(texts), row_of, vecs, weight)
    want = 1 / (1 + np.exp(-((X - centre) @ W + b)))
    got = model.predict(texts, ["en", "en", "en"])
    assert got[:2] == pytest.approx(want[:2], rel=1e-4)
    # no known token: bias (and the language's centring) alone
    assert got[2] == pytest.approx(1 / (1 + np.exp(-(b - centre @ W))), rel=1e-4)
    # the language bias applies only to its language
    other = model.predict(["nothing known here"], ["ja"])[0]
    assert other == pytest.approx(1 / (1 + np.exp(-b)), rel=1e-4)


def test_arrays_roundtrip() -> None:
    m = TokenStatic(np.array([2, 9]), np.ones(2), np.ones((2, 3)), np.zeros(3),
                    ["a", "b", "c"], {"en": np.ones(3), "ja": np.zeros(3)})
    back = TokenStatic.from_arrays(m.arrays(), ["a", "b", "c"], FakeTokenizer({"x": 2}))
    assert back.lang_bias.keys() == {"en", "ja"}
    # token score 1 + bias 0 + English bias 1 = logit 2 on every head
    assert back.predict(["x"], ["en"])[0] == pytest.approx(np.full(3, 1 / (1 + np.exp(-2.0))))
    assert back.predict(["x"], ["ja"])[0] == pytest.approx(np.full(3, 1 / (1 + np.exp(-1.0))))
