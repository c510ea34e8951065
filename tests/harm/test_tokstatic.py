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


def _cnn(rng: np.random.Generator, dims: int = 6, ch: int = 4, hidden: int = 5):  # type: ignore[no-untyped-def]
    from guardrail.harm.tokstatic import GateCNN

    f = np.float32
    proj = rng.normal(size=(5, dims)).astype(f)
    centre = {"en": rng.normal(size=dims).astype(f), "other": np.zeros(dims, f)}
    conv, conv_b = rng.normal(size=(3, dims, ch)).astype(f), rng.normal(size=ch).astype(f)
    return GateCNN(proj, centre, rng.normal(size=(dims + 2 * ch, hidden)).astype(f),
                   rng.normal(size=hidden).astype(f), rng.normal(size=(hidden, 2)).astype(f),
                   rng.normal(size=2).astype(f), ["toxic", "any"], conv=conv, conv_b=conv_b)


def test_cnn_gate_equals_a_torch_convolution() -> None:
    """The numpy gate the scanner runs is the network distill_gate.py trains: a width-3
    zero-padded convolution, max and weighted-mean pooled, beside the centred mean vector."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    gate = _cnn(rng)
    weight = rng.uniform(0.2, 1.0, size=5).astype(np.float32)
    rows = [np.array([0, 3, 1, 4]), np.array([2]), np.array([], np.int64), np.array([1, 1, 0])]
    langs = ["en", "ja", "en", "en"]
    got = gate.predict_rows(rows, weight, langs)
    conv = torch.nn.Conv1d(6, 4, 3, padding=1)
    conv.weight.data = torch.from_numpy(gate.conv.transpose(2, 1, 0).copy())
    conv.bias.data = torch.from_numpy(gate.conv_b)
    for i, r in enumerate(rows):
        c = gate.centre.get(langs[i], gate.centre["other"])
        x = torch.from_numpy(gate.proj[r])
        u = torch.from_numpy(weight[r])
        if len(r):
            h = torch.relu(conv(x.T[None]))[0].T
            f = torch.cat([(u @ x) / u.sum() - torch.from_numpy(c), h.max(0).values,
                           (u @ h) / u.sum()])
        else:
            f = torch.cat([-torch.from_numpy(c), torch.zeros(8)])
        z = torch.relu(f @ torch.from_numpy(gate.W1) + torch.from_numpy(gate.b1))
        want = torch.sigmoid(z @ torch.from_numpy(gate.W2) + torch.from_numpy(gate.b2))
        assert got[i] == pytest.approx(want.detach().numpy(), abs=1e-5), i
    # order matters to a convolution, not to a mean: the same tokens reversed differ
    rev = gate.predict_rows([rows[0][::-1].copy()], weight, ["en"])[0]
    assert not np.allclose(rev, got[0])


def test_cnn_gate_survives_the_heads_file() -> None:
    from guardrail.harm.tokstatic import GateCNN

    rng = np.random.default_rng(2)
    m = TokenStatic(np.array([2, 9, 11, 12, 20]), np.ones(5), np.ones((5, 2)), np.zeros(2),
                    ["toxic", "any"], {"en": np.ones(2)}, FakeTokenizer({"a": 2, "b": 9}))
    m.gate_mlp = _cnn(rng)
    back = TokenStatic.from_arrays(m.arrays(), ["toxic", "any"], FakeTokenizer({"a": 2, "b": 9}))
    assert isinstance(back.gate_mlp, GateCNN)
    _, want = m.predict_with_gate(["a b a", "b"], ["en", "en"])
    _, got = back.predict_with_gate(["a b a", "b"], ["en", "en"])
    assert want is not None and got is not None
    assert got == pytest.approx(want, abs=2e-3)  # the projection is stored in float16
