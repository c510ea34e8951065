"""Chunking of long outputs and the taxonomy label mapping."""

from __future__ import annotations

import pytest

from guardrail.harm.chunking import chunk_spans, sentences
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


def test_label_mapping() -> None:
    assert map_label("identity_attack") == "hate"
    assert map_label("INSULT") == "harassment"
    assert map_label("neutral") is None
    assert map_label("foo", {"foo": "sexual"}) == "sexual"
    assert map_label("toxicity", {"toxicity": None}) is None
    assert "self_harm" in ALL_CATEGORIES
