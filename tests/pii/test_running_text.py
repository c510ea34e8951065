"""PII in running Japanese text: identifiers glued to kana/kanji with no space, full-width
punctuation around them, and 12-digit numbers introduced as something other than a My Number.

Each case runs through the real presidio AnalyzerEngine (pattern mode) in both languages: the
proxy picks ``ja`` or ``en`` from the text, and mixed text can go either way.
"""

from __future__ import annotations

import re

import pytest

from guardrail.scanners.pii_text import (
    BOUNDARY,
    WORD,
    introduced_as_other,
    latin_bounded,
)

LANGS = ("ja", "en")


@pytest.fixture(scope="module")
def analyzer():
    from guardrail.scanners.pii import PiiAnalyzer

    return PiiAnalyzer("pattern")


def hits(analyzer, text: str, lang: str, entity: str) -> list[str]:
    ents = None if entity != "URL" else ["URL"]
    return [text[m.start:m.end] for m in analyzer.analyze(text, lang, ents)
            if m.entity == entity and m.score >= 0.5]


def any_hit(analyzer, text: str, lang: str, entity: str) -> list[tuple[str, float]]:
    return [(text[m.start:m.end], m.score) for m in analyzer.analyze(text, lang)
            if m.entity == entity]


# -- glued identifiers: found, and the span is the identifier alone -----------------------------

GLUED = [
    pytest.param("連絡先はtaro@example.co.jpです", "EMAIL_ADDRESS", "taro@example.co.jp",
                 id="email-kana-both-sides"),
    pytest.param("ご連絡はtaro.yamada@example.co.jpまで。", "EMAIL_ADDRESS",
                 "taro.yamada@example.co.jp", id="email-dotted-local"),
    pytest.param("メール：hanako_s+news@mail.example.comへ送信", "EMAIL_ADDRESS",
                 "hanako_s+news@mail.example.com", id="email-fullwidth-colon"),
    pytest.param("担当（sato-k@example.ne.jp）まで", "EMAIL_ADDRESS", "sato-k@example.ne.jp",
                 id="email-fullwidth-parens"),
    pytest.param("宛先は、info@example.org。", "EMAIL_ADDRESS", "info@example.org",
                 id="email-touten-kuten"),
    pytest.param("山田様taro＠example.comにて", "EMAIL_ADDRESS", "taro＠example.com",
                 id="email-fullwidth-at"),
    pytest.param("電話090-1234-5678まで", "JP_PHONE_NUMBER", "090-1234-5678", id="phone"),
    pytest.param("携帯は０９０－１２３４－５６７８です", "JP_PHONE_NUMBER",
                 "０９０－１２３４－５６７８", id="phone-fullwidth"),
    pytest.param("代表03-1234-5678（平日）", "JP_PHONE_NUMBER", "03-1234-5678",
                 id="phone-parens-after"),
    pytest.param("〒100-0001東京都千代田区", "JP_POSTAL_CODE", "100-0001", id="postal-mark"),
    pytest.param("郵便番号は100-0001です", "JP_POSTAL_CODE", "100-0001", id="postal-context"),
    pytest.param("マイナンバーは123456789018です", "JP_MY_NUMBER", "123456789018",
                 id="mynumber"),
    pytest.param("個人番号1234-5678-9018を記入", "JP_MY_NUMBER", "1234-5678-9018",
                 id="mynumber-hyphens"),
    pytest.param("カード番号は4111111111111111です。", "CREDIT_CARD", "4111111111111111",
                 id="card"),
    pytest.param("カード4111-1111-1111-1111で決済", "CREDIT_CARD", "4111-1111-1111-1111",
                 id="card-hyphens"),
    pytest.param("IPは192.168.1.1です", "IP_ADDRESS", "192.168.1.1", id="ipv4"),
    pytest.param("サーバー10.0.0.25に接続", "IP_ADDRESS", "10.0.0.25", id="ipv4-katakana"),
    pytest.param("「203.0.113.7」から", "IP_ADDRESS", "203.0.113.7", id="ipv4-kagikakko"),
    pytest.param("IPv6はfe80::1ですが", "IP_ADDRESS", "fe80::1", id="ipv6"),
    pytest.param("口座はDE89370400440532013000です", "IBAN_CODE",
                 "DE89370400440532013000", id="iban"),
    pytest.param("詳しくはhttps://example.com/docs?id=1をご覧ください。", "URL",
                 "https://example.com/docs?id=1", id="url"),
    pytest.param("「https://example.co.jp/path」参照", "URL", "https://example.co.jp/path",
                 id="url-kagikakko"),
]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("text,entity,value", GLUED)
def test_identifier_glued_to_japanese_found_with_exact_span(analyzer, text, entity, value, lang):
    assert hits(analyzer, text, lang, entity) == [value]


@pytest.mark.parametrize("text,entity,value", [
    pytest.param("SSNは536-90-4399です", "US_SSN", "536-90-4399", id="ssn"),
    pytest.param("電話+1 415 555 0132まで", "PHONE_NUMBER", "+1 415 555 0132", id="intl-phone"),
])
def test_english_only_identifiers_glued_to_japanese(analyzer, text, entity, value):
    assert hits(analyzer, text, "en", entity) == [value]


@pytest.mark.parametrize("lang", LANGS)
def test_several_identifiers_in_one_unspaced_sentence(analyzer, lang):
    text = "電話は03-1234-5678、メールはa.b@example.jp、IPは192.0.2.1です。"
    got = {(m.entity, text[m.start:m.end]) for m in analyzer.analyze(text, lang)
           if m.score >= 0.5}
    assert got == {("JP_PHONE_NUMBER", "03-1234-5678"), ("EMAIL_ADDRESS", "a.b@example.jp"),
                   ("IP_ADDRESS", "192.0.2.1")}


# -- near-misses: Latin text glued to an identifier still blocks it, as before ------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("text,entity", [
    pytest.param("abc192.168.1.1", "IP_ADDRESS", id="ip-latin-glued"),
    pytest.param("連絡先はtaro@exampleです", "EMAIL_ADDRESS", id="email-no-tld"),
    pytest.param("アドレスは@example.comです", "EMAIL_ADDRESS", id="email-no-local"),
    pytest.param("太郎＠会社です", "EMAIL_ADDRESS", id="email-japanese-only"),
    pytest.param("IPは999.168.1.1です", "IP_ADDRESS", id="ip-out-of-range"),
    pytest.param("カード4111111111111112で", "CREDIT_CARD", id="card-bad-luhn"),
    pytest.param("バージョンv1.2.3.4です", "IP_ADDRESS", id="version-latin-prefix"),
])
def test_near_misses(analyzer, text, entity, lang):
    assert hits(analyzer, text, lang, entity) == []


def test_latin_accented_email_still_found(analyzer):
    assert hits(analyzer, "Write to josé.müller@example.com today", "en", "EMAIL_ADDRESS") == [
        "josé.müller@example.com"]


# -- a 12-digit number introduced as something else is not a My Number -------------------------

VALID_MY_NUMBERS = ("123456789018", "987654321093", "1234 5678 9018", "1234-5678-9018")
OTHER_LABELS = (
    "注文番号は{}です", "ご注文番号：{}", "伝票番号{}", "お問い合わせ番号は{}です。",
    "問合せ番号 {}",
    "受付番号{}で承りました", "会員番号：{}", "追跡番号{}", "送り状番号 {}", "予約番号は{}",
    "お客様番号{}", "請求書番号 {}", "注文ID:{}", "注文ＩＤ：{}", "Order number: {}",
    "order no. {}", "Invoice #{}", "tracking number {}", "Your order {} has shipped",
    "Reference number {}", "マイナンバーカードの受付番号は{}です", "個人番号ではなく注文番号{}",
    "{}（注文番号）", "{} (tracking number)",
)


@pytest.mark.parametrize("template", OTHER_LABELS)
@pytest.mark.parametrize("number", VALID_MY_NUMBERS[:2])
def test_number_introduced_as_another_kind_is_no_my_number(analyzer, template, number):
    text = template.format(number)
    for lang in LANGS:
        assert any_hit(analyzer, text, lang, "JP_MY_NUMBER") == [], (text, lang)


@pytest.mark.parametrize("number", VALID_MY_NUMBERS)
@pytest.mark.parametrize("template,score", [
    pytest.param("マイナンバーは{}です", 1.0, id="mynumber"),
    pytest.param("個人番号：{}", 1.0, id="kojin-bango"),
    pytest.param("マイナンバー（個人番号）{}", 1.0, id="both-words"),
    pytest.param("注文番号は別紙、マイナンバーは{}です", 1.0, id="other-label-further-back"),
    pytest.param("受付番号と個人番号：{}", 1.0, id="own-word-nearer"),
    pytest.param("番号{}を控えた", 0.75, id="no-label"),
])
def test_number_introduced_as_my_number_still_found(analyzer, number, template, score):
    text = template.format(number)
    assert any_hit(analyzer, text, "ja", "JP_MY_NUMBER") == [(number, score)]


def test_thirteen_digit_order_number_is_no_corporate_number(analyzer):
    # 7000012050002 has a valid 法人番号 check digit
    assert any_hit(analyzer, "伝票番号 7000012050002", "ja", "JP_CORPORATE_NUMBER") == []
    assert any_hit(analyzer, "注文番号：7000012050002", "ja", "JP_CORPORATE_NUMBER") == []
    assert any_hit(analyzer, "法人番号 7000012050002", "ja", "JP_CORPORATE_NUMBER") == [
        ("7000012050002", 0.95)]
    assert any_hit(analyzer, "請求書番号 T7000012050002", "ja", "JP_CORPORATE_NUMBER") == [
        ("T7000012050002", 0.95)]  # the T form is a registration number whatever it is called


# -- the helpers ---------------------------------------------------------------------------------

def test_latin_bounded_rewrites_w_and_b_only():
    p = latin_bounded(r"\b[\w.]+@\w+\b\d\s")
    assert p == rf"{BOUNDARY}[{WORD}.]+@[{WORD}]+{BOUNDARY}\d\s"
    assert latin_bounded(r"[^\w]x[\]\w]") == rf"[^{WORD}]x[\]{WORD}]"
    assert re.fullmatch(latin_bounded(r"\w+"), "は") is None
    assert re.fullmatch(latin_bounded(r"\w+"), "Ñandú_1") is not None
    with pytest.raises(ValueError):
        latin_bounded(r"\W")


@pytest.mark.parametrize("text,expected", [
    pytest.param("注文番号は[N]", True, id="other-before"),
    pytest.param("マイナンバーは[N]", False, id="own-before"),
    pytest.param("[N]", False, id="no-label"),
    pytest.param("マイナンバーの受付番号は[N]", True, id="other-nearer"),
    pytest.param("受付番号とマイナンバー[N]", False, id="own-nearer"),
    pytest.param("[N]（注文番号）", True, id="other-after"),
    pytest.param("[N]（マイナンバー、注文番号ではない）", False, id="own-first-after"),
    pytest.param("注文番号" + "あ" * 40 + "[N]", False, id="other-out-of-window"),
])
def test_introduced_as_other(text, expected):
    start = text.index("[N]")
    own = ("マイナンバー", "個人番号")
    assert introduced_as_other(text, start, start + 3, own, 30, 15) is expected


def test_own_word_overlapping_a_label_wins():
    text = "法人番号 7000012050002"
    assert introduced_as_other(text, 5, 18, ("法人番号",), 30, 15) is False
    assert introduced_as_other(text, 5, 18, ("マイナンバー",), 30, 15) is True
