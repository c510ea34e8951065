from __future__ import annotations

import asyncio

import pytest

from guardrail.pipeline.types import RequestMeta, ScanContext
from guardrail.scanners.denylist import DenylistConfig, DenylistScanner

META = RequestMeta(request_id="r", route="/", policy_name="p", policy_version="v", system_id="s")


def scan(text: str, **cfg) -> list[tuple[str, str]]:
    s = DenylistScanner(DenylistConfig(**cfg))
    s.load()
    res = asyncio.run(s.scan(ScanContext(text=text, meta=META)))
    return [(text[f.span[0]:f.span[1]], f.category) for f in res.findings]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("a Secret plan", ["Secret"], id="case"),
    pytest.param("ａ ＳＥＣＲＥＴ plan", ["ＳＥＣＲＥＴ"], id="fullwidth-latin"),
    pytest.param("secretive plan", [], id="word-boundary"),
    pytest.param("これは社外秘です", ["社外秘"], id="japanese"),
    pytest.param("ｼｬｶﾞｲﾋ", [], id="halfwidth-kana-other-word"),
    pytest.param("コード名はﾌﾟﾛｼﾞｪｸﾄX", ["ﾌﾟﾛｼﾞｪｸﾄX"], id="halfwidth-kana-nfkc"),
])
def test_terms_nfkc_case_width(text, expected):
    got = [m for m, _ in scan(text, terms=["secret", "社外秘", "プロジェクトx"])]
    assert got == expected


def test_patterns_on_normalised_text():
    assert scan("key ＳＫ－ＡＢＣＤＥＦＧＨＩＪＫ", patterns=[r"sk-[a-z]{10}"], category="key") == [
        ("ＳＫ－ＡＢＣＤＥＦＧＨＩＪ", "key")]


def test_bad_regex_rejected():
    with pytest.raises(ValueError, match="invalid regular expression"):
        DenylistConfig(patterns=["("])
