from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from guardrail.corpus.minhash import IndexParams, band_keys, permutations, window_signatures
from guardrail.corpus.text import normalised_tokens, shingle_hashes, tokenize
from tests.corpus.conftest import en_text, ja_text


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        pytest.param("Hello, WORLD!", ["hello", "world"], id="case-punct"),
        pytest.param("ＡＢＣ　ｄｅｆ", ["abc", "def"], id="fullwidth"),
        pytest.param("吾輩は猫である。", list("吾輩は猫である"), id="japanese"),
        pytest.param("ｶﾀｶﾅ", list("カタカナ"), id="halfwidth-kana"),
        pytest.param("GPT-4は強い", ["gpt", "4", "は", "強", "い"], id="mixed"),
    ],
)
def test_tokens_normalised(text: str, tokens: list[str]) -> None:
    assert normalised_tokens(text) == tokens


def test_token_spans_point_into_original() -> None:
    text = "  Ｆｏｏ, bar。猫"
    toks = tokenize(text)
    got = [text[s:e] for s, e in zip(toks.starts, toks.ends, strict=True)]
    assert got == ["Ｆｏｏ", "bar", "猫"]
    assert toks.cjk.tolist() == [False, False, True]


def test_shingles_stable_and_order_sensitive() -> None:
    a = shingle_hashes(tokenize("one two three four"))
    assert a.dtype == np.uint32 and a.shape == (2,)
    assert np.array_equal(a, shingle_hashes(tokenize("ONE two, three four")))
    assert not np.array_equal(a, shingle_hashes(tokenize("two one three four")))


def test_window_signatures_equal_datasketch() -> None:
    p = IndexParams()
    text = en_text(1, 300)
    w = window_signatures(tokenize(text), p, p.stride_units)
    assert w.signatures.shape[1] == p.num_perm and w.signatures.shape[0] > 10
    for i in (0, 5, len(w.signatures) - 1):
        sub = tokenize(text[w.char_starts[i] : w.char_ends[i]])
        m = MinHash(num_perm=p.num_perm, seed=p.seed, hashfunc=lambda x: x)
        m.update_batch([int(h) for h in shingle_hashes(sub, p.shingle)])
        assert np.array_equal(m.hashvalues, w.signatures[i])


def test_windows_cover_text_with_overlap() -> None:
    p = IndexParams()
    text = ja_text(2, 500)
    w = window_signatures(tokenize(text), p, p.stride_units)
    assert w.char_starts[0] == 0 and w.char_ends[-1] == len(text) - (text[-1] == "。")
    assert np.all(w.char_starts[1:] < w.char_ends[:-1])  # consecutive windows overlap
    keys = band_keys(w.signatures, p)
    assert keys.shape == (len(w.signatures), p.bands) and keys.dtype == np.uint32


def test_permutations_are_datasketchs() -> None:
    a, b = permutations(128, 1)
    da, db = MinHash(num_perm=128, seed=1).permutations
    assert np.array_equal(a, da) and np.array_equal(b, db)


def test_short_text_is_one_window() -> None:
    p = IndexParams()
    w = window_signatures(tokenize("just four short words"), p, p.stride_units)
    assert w.signatures.shape[0] == 1
