"""The static word-vector stage: tokenisation and the folded linear heads."""

from __future__ import annotations

import numpy as np
import pytest

from guardrail.harm.static import StaticModel, mean_vectors, sif_weights, tokens

JA = {"お前", "は", "本当", "本当に", "バカ", "で", "役立たず", "だ", "消えろ", "クズ", "東京"}


def test_tokens_english_and_japanese_longest_match():
    text = "お前は本当にバカで役立たずだ。消えろ、クズ。You're a WORTHLESS idiot, ＡＢＣ１２３!"
    assert tokens(text, JA) == ["お前", "は", "本当に", "バカ", "で", "役立たず", "だ", "消えろ",
                                "クズ", "you're", "a", "worthless", "idiot", "abc123"]


def test_unknown_kanji_are_skipped_not_glued():
    assert tokens("東京都庁", JA) == ["東京"]  # 都, 庁 not in the vocabulary


def test_folded_heads_equal_mean_vector_then_linear_head():
    rng = np.random.default_rng(0)
    words = ["you", "idiot", "are", "nice", "バカ", "東京"]
    vecs = rng.normal(size=(len(words), 8)).astype(np.float32)
    weight = sif_weights(np.array([1e-2, 1e-5, 1e-2, 1e-4, 1e-5, 1e-4]))
    W, b = rng.normal(size=(8, 2)), np.array([0.1, -0.3])
    model = StaticModel(words, weight, vecs @ W, b, ["any", "hate"])
    texts = ["You are an idiot!", "東京はバカ", "nothing known here"]
    index = {w: i for i, w in enumerate(words)}
    X = mean_vectors(texts, index, vecs, weight)
    want = 1 / (1 + np.exp(-(X @ W + b)))
    assert model.predict(texts) == pytest.approx(want, rel=1e-5)
    assert model.predict(["nothing known here"])[0] == pytest.approx(1 / (1 + np.exp(-b)))


def test_toxic_blend_weight_is_per_language():
    from guardrail.harm.embedded import Heads

    rng = np.random.default_rng(1)
    labels = ["hate", "any", "toxic"]
    W, b = rng.normal(size=(4, 3)), np.zeros(3)
    static = StaticModel(["idiot"], np.ones(1), np.zeros((1, 3)), np.zeros(3), labels)
    heads = Heads(labels=labels, W=W, b=b, static=static,
                  static_weight={"en": 1.0, "ja": 0.0})
    emb = rng.normal(size=(2, 4)).astype(np.float32)
    s1 = np.array([[0.1, 0.2, 0.9], [0.1, 0.2, 0.9]])
    en, ja = heads.stage2(["you idiot", "お前はバカだ"], emb, s1)
    assert en["toxic"] == pytest.approx(0.9, rel=1e-4)  # English: the static score alone
    p_enc = 1 / (1 + np.exp(-(emb[1] @ W[:, 2])))
    assert ja["toxic"] == pytest.approx(p_enc, rel=1e-4)  # Japanese: the encoder alone
    assert ja["hate"] == pytest.approx(min(1 / (1 + np.exp(-(emb[1] @ W[:, 0]))),
                                           1 / (1 + np.exp(-(emb[1] @ W[:, 1])))), rel=1e-4)
