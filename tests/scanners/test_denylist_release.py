"""The denylist scanner's own release bound: held only from where a term or pattern could
still match once more text arrives (a partial match, or a complete one that may still grow,
reaching the end), on the same NFKC + casefolded text the scan matches."""

from __future__ import annotations

import pytest

from guardrail.scanners.denylist import MAX_HOLD_CHARS, DenylistConfig, DenylistScanner

TERMS = ["secret", "Project Falcon", "社外秘", "プロジェクトx"]
PATTERNS = ["sk-[a-z0-9]{20,}"]
KEY = "sk-" + "a1b2c3d4e5" * 3


def scanner(**cfg: object) -> DenylistScanner:
    s = DenylistScanner(DenylistConfig.model_validate(
        {"terms": TERMS, "patterns": PATTERNS, **cfg}))
    s.load()
    return s


def held(text: str, **cfg: object) -> str:
    s = scanner(**cfg)
    return text[s.safe_release(text, len(text)):]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("The report covers three regions. ", "", id="benign-all-released"),
    pytest.param("Nothing to see here", "", id="benign-no-partial"),
    pytest.param("Keep it sec", "sec", id="term-split-held-from-first-char"),
    pytest.param("Keep it s", "s", id="term-first-char"),
    pytest.param("Keep it SECRE", "SECRE", id="term-case"),
    pytest.param("Keep it ｓｅｃ", "ｓｅｃ", id="term-fullwidth"),
    pytest.param("Keep it secret", "secret", id="complete-term-at-end-held"),
    pytest.param("Keep it secret.", "", id="complete-term-closed"),
    pytest.param("Keep it secretiv", "", id="word-boundary-gone"),
    pytest.param("about Project Fal", "Project Fal", id="multi-word-term"),
    pytest.param("これは社外", "社外", id="japanese-term-split"),
    pytest.param("これは社", "社", id="japanese-term-first-char"),
    pytest.param("これは社外秘です", "す", id="japanese-kana-may-take-voicing"),
    pytest.param("これは社外秘の件", "", id="japanese-closed"),
    pytest.param("これは社外秘の件。", "", id="japanese-punctuation"),
    pytest.param("ｶ", "ｶ", id="halfwidth-kana-may-take-voicing"),
    pytest.param("cafe\u0301", "\u0301", id="combining-mark-may-take-more"),
    pytest.param("コード名はﾌﾟﾛｼﾞ", "ﾌﾟﾛｼﾞ", id="halfwidth-kana-split"),
    pytest.param("コード名はﾌ", "ﾌ", id="halfwidth-voicing-mark-to-come"),
    pytest.param("コード名はﾌﾟ", "ﾌﾟ", id="halfwidth-voiced"),
    pytest.param("your key sk-abc", "sk-abc", id="api-key-being-written"),
    pytest.param(f"your key {KEY}", KEY, id="api-key-complete-may-grow"),
    pytest.param(f"your key {KEY} is set", "", id="api-key-closed"),
    pytest.param("your key ＳＫ－ＡＢ", "ＳＫ－ＡＢ", id="api-key-fullwidth"),
])
def test_bound(text: str, expected: str) -> None:
    assert held(text) == expected


def test_voicing_mark_completing_a_term_is_held() -> None:
    """``ｶ`` then ``ﾞ`` normalise to ``ガ``: the ``ｶ`` is held until the mark can be seen."""
    s = scanner(terms=["ガス"])
    assert s.safe_release("都市ｶ", 3) == 2
    assert s.safe_release("都市カ", 3) == 2  # カ + U+3099 is ガ too
    assert s.safe_release("都市ｶﾞ", 4) == 2  # ガ, and the term may follow
    assert s.safe_release("都市ｶﾞｽ", 5) == 2  # complete at the end: held
    assert s.safe_release("都市ｶﾞｽ会社", 7) == 7


def test_never_more_than_scanned_upto() -> None:
    s = scanner()
    text = "plain words and more plain words"
    for upto in range(len(text) + 1):
        assert s.safe_release(text, upto) <= upto
    # only the scanned part counts: a term in the unscanned tail is not seen, the partial
    # match at the scanned end is
    text = "Keep it secret, and the key"
    assert s.safe_release(text, 11) == 8  # "Keep it sec" scanned: held from "sec"
    assert s.safe_release(text, 0) == 0


def test_alternative_that_may_still_grow() -> None:
    """A complete match that ends before the text does is the scan's; one whose longer
    alternative can still complete is held."""
    assert held("xabc", terms=[], patterns=["ab|abcd"]) == "abc"
    assert held("xabcx", terms=[], patterns=["ab|abcd"]) == ""


def test_no_rules_holds_nothing() -> None:
    s = scanner(terms=[], patterns=[])
    assert s.safe_release("anything sec", 12) == 12


def test_hold_is_capped() -> None:
    text = "x " + "sk-" + "a" * (2 * MAX_HOLD_CHARS)
    assert len(held(text)) == MAX_HOLD_CHARS


def test_timeout_falls_back_to_the_fixed_window() -> None:
    class Slow:
        def search(self, *args: object, **kwargs: object) -> None:
            assert kwargs["timeout"] == 0.001 and kwargs["partial"] is True
            raise TimeoutError("regex time out")

    s = scanner(match_timeout_ms=1)
    s._open = Slow()  # type: ignore[assignment]
    text = "plain words " * 20
    assert s.safe_release(text, len(text)) == len(text) - s.holdback_chars == len(text) - 64
