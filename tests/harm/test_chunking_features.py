"""Chunking of long outputs and the hashed n-gram features of the first stage."""

from __future__ import annotations

import numpy as np
import pytest

from guardrail.harm.chunking import chunk_spans, sentences
from guardrail.harm.features import hash_features, linear_scores
from guardrail.harm.taxonomy import ALL_CATEGORIES, map_label


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Hello there. This is fine! " * 40, id="english"),
        pytest.param("これは文です。とても長い文章になります！" * 40, id="japanese"),
        pytest.param("x" * 1500, id="no-boundaries"),
        pytest.param("word " * 400, id="no-sentence-ends"),
        pytest.param("Short.", id="short"),
    ],
)
def test_chunks_cover_text_within_limit(text: str) -> None:
    spans = chunk_spans(text, 300)
    assert all(e - s <= 300 for s, e in spans)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))  # contiguous


def test_chunks_keep_sentences_whole() -> None:
    text = "First sentence is here. " * 3 + "I will hurt your family tonight. " + "Ok. " * 50
    for s, e in chunk_spans(text, 120):
        assert not text[s:e].strip() or text[s:e].rstrip().endswith(".")
    assert any("I will hurt your family tonight." in text[s:e] for s, e in chunk_spans(text, 120))
    assert sentences("a. b。c")[1] == (3, 5)


def test_hashed_features_normalised_and_script_aware() -> None:
    data, idx, ptr = hash_features(["You IDIOT", "ｂａｋａ ばか", ""], bits=12)
    assert list(np.diff(ptr))[2] == 0  # empty text: no features
    for i in range(2):
        v = data[ptr[i] : ptr[i + 1]]
        assert np.isclose(np.sqrt((v * v).sum()), 1.0)
    a, ia, pa = hash_features(["ＹＯＵ ｉｄｉｏｔ"], bits=12)
    assert set(ia) == set(idx[ptr[0] : ptr[1]])  # NFKC + casefold


def test_linear_scores_use_weights() -> None:
    w = np.zeros(1 << 10, np.float32)
    data, idx, _ = hash_features(["idiot"], bits=10)
    w[idx] = 10.0
    s = linear_scores(["idiot", "hello", ""], w, -1.0, 10)
    assert s[0] > 0.9 and s[1] < 0.5 and np.isclose(s[2], 1 / (1 + np.e))


def test_label_mapping() -> None:
    assert map_label("identity_attack") == "hate"
    assert map_label("INSULT") == "harassment"
    assert map_label("neutral") is None
    assert map_label("foo", {"foo": "sexual"}) == "sexual"
    assert map_label("toxicity", {"toxicity": None}) is None
    assert "self_harm" in ALL_CATEGORIES
