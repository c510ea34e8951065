"""TextBuffer: the stream's text, appended in pieces of any size, reads exactly as the joined
string would, whatever the slice, interleaved with appends."""

from __future__ import annotations

import random

import pytest

from guardrail.proxy.textbuffer import BLOCK, TextBuffer


@pytest.mark.parametrize("seed", range(6))
def test_slices_equal_the_joined_string(seed):
    rng = random.Random(seed)
    buf, ref = TextBuffer(), ""
    for _ in range(600):
        size = rng.choice([0, 1, 3, 50, 700])
        piece = "".join(rng.choice("abcあい\U0001f600 ") for _ in range(size))
        buf.append(piece)
        ref += piece
        assert len(buf) == len(ref)
        for _ in range(3):
            a, b = sorted(rng.randint(-len(ref) - 2, len(ref) + 2) for _ in range(2))
            assert buf[a:b] == ref[a:b]
        k = rng.randint(0, len(ref) + 1)
        assert buf[k:] == ref[k:]  # the scan window: from an offset to the end
        if rng.random() < 0.05:
            assert str(buf) == ref and buf == ref
    assert str(buf) == ref and buf[:] == ref and buf[len(ref) - 5:] == ref[-5:]


def test_tail_reads_cover_blocks_and_the_unfolded_tail():
    buf = TextBuffer("x" * (BLOCK - 1))
    buf.append("yz")  # folds: one block
    buf.append("tail")  # not folded yet
    assert buf[BLOCK - 3:] == "xxyztail"
    assert buf[BLOCK:BLOCK + 3] == "zta"
    assert str(buf).endswith("yztail") and len(buf) == BLOCK + 5


def test_only_slices_with_step_one():
    with pytest.raises(TypeError):
        TextBuffer("abc")[::2]
    with pytest.raises(TypeError):
        TextBuffer("abc")[1]  # type: ignore[index]
