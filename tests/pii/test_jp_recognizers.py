"""Japanese recognizers: valid forms, near-misses, full-width input and context boosting.

Each case runs through the real presidio AnalyzerEngine (pattern mode) so normalisation,
span mapping and overlap resolution are part of what is tested.
"""

from __future__ import annotations

import pytest

from guardrail.scanners.jp_recognizers import (
    corporate_number_valid,
    jp_phone_valid,
    my_number_valid,
    normalise_for_pii,
)


@pytest.fixture(scope="module")
def analyzer():
    from guardrail.scanners.pii import PiiAnalyzer

    return PiiAnalyzer("pattern")


def found(analyzer, text: str, entity: str, lang: str = "ja") -> list[tuple[str, float]]:
    return [(text[m.start:m.end], m.score) for m in analyzer.analyze(text, lang)
            if m.entity == entity]


def only(analyzer, text: str, entity: str) -> tuple[str, float]:
    hits = found(analyzer, text, entity)
    assert len(hits) == 1, hits
    return hits[0]


# -- check digits -----------------------------------------------------------------------------

@pytest.mark.parametrize("digits,ok", [
    pytest.param("123456789018", True, id="mynumber-valid"),
    pytest.param("987654321093", True, id="mynumber-valid-2"),
    pytest.param("100000000001", False, id="mynumber-remainder0-needs-0"),
    pytest.param("123456789019", False, id="mynumber-bad-check"),
    pytest.param("12345678901", False, id="mynumber-11-digits"),
])
def test_my_number_check_digit(digits, ok):
    assert my_number_valid(digits) is ok


def test_my_number_check_digit_is_one_in_ten():
    # exactly one check digit completes any 11-digit body
    for body in ("00000000000", "12345678901", "31415926535", "99999999999"):
        assert sum(my_number_valid(body + str(c)) for c in range(10)) == 1


@pytest.mark.parametrize("digits,ok", [
    pytest.param("7000012050002", True, id="nta-corporate-number"),
    pytest.param("8000012050002", False, id="bad-check"),
    pytest.param("700001205000", False, id="12-digits"),
])
def test_corporate_number_check_digit(digits, ok):
    assert corporate_number_valid(digits) is ok


@pytest.mark.parametrize("number,ok", [
    pytest.param("03-1234-5678", True, id="tokyo"),
    pytest.param("+81 (0)3-1234-5678", True, id="intl-trunk"),
    pytest.param("090-1234-567", False, id="mobile-short"),
    pytest.param("0120-123-4567", False, id="tollfree-11"),
    pytest.param("00-1234-5678", False, id="00-prefix"),
    pytest.param("+82-10-1234-5678", False, id="korea"),
])
def test_phone_validator(number, ok):
    assert jp_phone_valid(number) is ok


def test_normalise_maps_spans_back():
    text = "電話：０９０ー１２３４ー５６７８。マイナンバー"
    norm, index = normalise_for_pii(text)
    assert "090-1234-5678" in norm
    s = norm.index("090")
    e = s + len("090-1234-5678")
    assert text[index[s]:index[e - 1] + 1] == "０９０ー１２３４ー５６７８"
    assert "マイナンバー" in norm  # the prolonged sound mark stays outside digit runs


# -- My Number ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value,score", [
    pytest.param("マイナンバーは123456789018です。", "123456789018", 1.0, id="context"),
    pytest.param("個人番号: 1234 5678 9018", "1234 5678 9018", 1.0, id="spaced"),
    pytest.param("番号 1234-5678-9018 を控えた", "1234-5678-9018", 0.75, id="no-context"),
    pytest.param("マイナンバー１２３４５６７８９０１８", "１２３４５６７８９０１８", 1.0,
                 id="fullwidth"),
    pytest.param("個人番号は１２３４－５６７８－９０１８", "１２３４－５６７８－９０１８", 1.0,
                 id="fullwidth-hyphen"),
    pytest.param("My Number: 987654321093.", "987654321093", 1.0, id="english-context"),
])
def test_my_number_found(analyzer, text, value, score):
    assert only(analyzer, text, "JP_MY_NUMBER") == (value, score)


@pytest.mark.parametrize("text", [
    pytest.param("マイナンバーは123456789019です。", id="bad-check-digit"),
    pytest.param("マイナンバーは12345678901です。", id="11-digits"),
    pytest.param("マイナンバーは1234567890180です。", id="13-digits"),
    pytest.param("注文番号 91234567890189 を確認", id="embedded-in-longer-run"),
    pytest.param("個人番号 1234-5678 9018", id="mixed-separators"),
    pytest.param("カード 4111 1234 5678 9018", id="tail-of-card-number"),
    pytest.param("ID123456789018", id="alnum-id"),
])
def test_my_number_near_misses(analyzer, text):
    assert found(analyzer, text, "JP_MY_NUMBER") == []


# -- Corporate Number -------------------------------------------------------------------------

@pytest.mark.parametrize("text,value,score", [
    pytest.param("法人番号 7000012050002 (国税庁)", "7000012050002", 0.95, id="context"),
    pytest.param("取引先コード 7000012050002", "7000012050002", 0.6, id="no-context"),
    pytest.param("登録番号：T7000012050002", "T7000012050002", 0.95, id="invoice-T"),
    pytest.param("法人番号：７００００１２０５０００２", "７００００１２０５０００２", 0.95,
                 id="fullwidth"),
])
def test_corporate_number_found(analyzer, text, value, score):
    assert only(analyzer, text, "JP_CORPORATE_NUMBER") == (value, score)


@pytest.mark.parametrize("text", [
    pytest.param("法人番号 8000012050002", id="bad-check-digit"),
    pytest.param("法人番号 17000012050002", id="embedded-14-digits"),
    pytest.param("法人番号 700001205000", id="12-digits"),
])
def test_corporate_number_near_misses(analyzer, text):
    assert found(analyzer, text, "JP_CORPORATE_NUMBER") == []


# -- phone ------------------------------------------------------------------------------------

@pytest.mark.parametrize("number", [
    pytest.param("03-1234-5678", id="area-2"),
    pytest.param("045-123-4567", id="area-3"),
    pytest.param("0466-12-3456", id="area-4"),
    pytest.param("01267-2-3456", id="area-5"),
    pytest.param("090-1234-5678", id="mobile-090"),
    pytest.param("080 1234 5678", id="mobile-080-spaces"),
    pytest.param("070-1234-5678", id="mobile-070"),
    pytest.param("060-1234-5678", id="mobile-060"),
    pytest.param("050-1234-5678", id="ip-050"),
    pytest.param("0120-123-456", id="tollfree-0120"),
    pytest.param("0800-123-4567", id="tollfree-0800"),
    pytest.param("0570-064-556", id="navi-0570"),
    pytest.param("+81-90-1234-5678", id="intl-mobile"),
    pytest.param("+81 3-1234-5678", id="intl-tokyo"),
    pytest.param("+81 (0)3-1234-5678", id="intl-trunk-zero"),
    pytest.param("(03) 1234-5678", id="paren-area"),
    pytest.param("03(1234)5678", id="paren-exchange"),
    pytest.param("０３－１２３４－５６７８", id="fullwidth"),
    pytest.param("０９０ー１２３４ー５６７８", id="fullwidth-choon"),
])
def test_phone_found(analyzer, number):
    assert only(analyzer, f"連絡先は {number} です", "JP_PHONE_NUMBER") == (number, 1.0)
    value, score = only(analyzer, f"こちらへ {number} どうぞ", "JP_PHONE_NUMBER")
    assert value == number and 0.7 <= score < 1.0


@pytest.mark.parametrize("text", [
    pytest.param("電話 090-1234-567", id="mobile-too-short"),
    pytest.param("電話 03-1234-56789", id="landline-11-digits"),
    pytest.param("電話 0120-123-4567", id="tollfree-too-long"),
    pytest.param("電話 12-3456-7890", id="no-trunk-zero"),
    pytest.param("電話 +82-10-1234-5678", id="other-country"),
    pytest.param("日付 2024-01-15", id="date"),
    pytest.param("部品 1090-1234-5678", id="embedded"),
    pytest.param("コード 090-1234-5678-9", id="extra-group"),
])
def test_phone_near_misses(analyzer, text):
    assert found(analyzer, text, "JP_PHONE_NUMBER") == []


def test_phone_bare_digits_need_context(analyzer):
    assert only(analyzer, "電話：0312345678", "JP_PHONE_NUMBER") == ("0312345678", 1.0)
    assert only(analyzer, "値は 0312345678 です", "JP_PHONE_NUMBER")[1] < 0.5


# -- postal code ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value,score", [
    pytest.param("〒100-0001 千代田", "100-0001", 0.95, id="mark"),
    pytest.param("〒１００－０００１", "１００－０００１", 0.95, id="mark-fullwidth"),
    pytest.param("〒1000001", "1000001", 0.95, id="mark-no-hyphen"),
    pytest.param("郵便番号 100-0001", "100-0001", 0.85, id="context"),
    pytest.param("100-0001 東京都千代田区", "100-0001", 0.85, id="prefecture-follows"),
    pytest.param("郵便番号1000001", "1000001", 0.7, id="context-no-hyphen"),
    pytest.param("品番 100-0001", "100-0001", 0.3, id="bare-low-score"),
])
def test_postal_found(analyzer, text, value, score):
    assert only(analyzer, text, "JP_POSTAL_CODE") == (value, score)


@pytest.mark.parametrize("text", [
    pytest.param("郵便番号 100-00012", id="too-long"),
    pytest.param("郵便番号 1100-0001", id="embedded"),
    pytest.param("値 1000001 個", id="bare-7-digits"),
])
def test_postal_near_misses(analyzer, text):
    assert found(analyzer, text, "JP_POSTAL_CODE") == []


# -- driver's licence, passport, bank account ---------------------------------------------------

@pytest.mark.parametrize("text,entity,value,score", [
    pytest.param("運転免許証番号 301234567890", "JP_DRIVER_LICENSE", "301234567890", 0.9,
                 id="licence"),
    pytest.param("免許証：３０１２３４５６７８９０", "JP_DRIVER_LICENSE",
                 "３０１２３４５６７８９０",
                 0.9, id="licence-fullwidth"),
    pytest.param("旅券番号 TK1234567", "JP_PASSPORT", "TK1234567", 0.9, id="passport"),
    pytest.param("パスポートはＴＫ１２３４５６７です", "JP_PASSPORT", "ＴＫ１２３４５６７", 0.9,
                 id="passport-fullwidth"),
    pytest.param("型番 TK1234567", "JP_PASSPORT", "TK1234567", 0.4, id="passport-no-context"),
    pytest.param("口座番号 1234567", "JP_BANK_ACCOUNT", "1234567", 0.85, id="account"),
    pytest.param("普通預金 ７６５４３２１", "JP_BANK_ACCOUNT", "７６５４３２１", 0.85,
                 id="account-fullwidth"),
])
def test_context_identifiers_found(analyzer, text, entity, value, score):
    assert only(analyzer, text, entity) == (value, score)


@pytest.mark.parametrize("text,entity", [
    pytest.param("番号 301234567890", "JP_DRIVER_LICENSE", id="licence-no-context"),
    pytest.param("運転免許証 981234567890", "JP_DRIVER_LICENSE", id="licence-bad-commission"),
    pytest.param("運転免許証 30123456789", "JP_DRIVER_LICENSE", id="licence-11-digits"),
    pytest.param("運転免許証 3012345678901", "JP_DRIVER_LICENSE", id="licence-13-digits"),
    pytest.param("旅券番号 TK12345678", "JP_PASSPORT", id="passport-8-digits"),
    pytest.param("旅券番号 TKA1234567", "JP_PASSPORT", id="passport-3-letters"),
    pytest.param("旅券番号 tk1234567", "JP_PASSPORT", id="passport-lowercase"),
    pytest.param("在庫 1234567 個", "JP_BANK_ACCOUNT", id="account-no-context"),
    pytest.param("口座番号 12345678", "JP_BANK_ACCOUNT", id="account-8-digits"),
])
def test_context_identifiers_near_misses(analyzer, text, entity):
    assert found(analyzer, text, entity) == []


def test_licence_context_beats_my_number(analyzer):
    # 123456789018 is a valid My Number, but next to 免許証 it is a licence number
    hits = analyzer.analyze("運転免許証番号は123456789018", "ja")
    assert [m.entity for m in hits] == ["JP_DRIVER_LICENSE"]


# -- address ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    pytest.param("住所は東京都千代田区千代田1-1です", "東京都千代田区千代田1-1", id="tokyo"),
    pytest.param("大阪府大阪市北区梅田3丁目1番1号に", "大阪府大阪市北区梅田3丁目1番1号",
                 id="osaka-ward"),
    pytest.param("北海道札幌市中央区北一条西2丁目", "北海道札幌市中央区北一条西2丁目",
                 id="sapporo"),
    pytest.param("神奈川県足柄下郡箱根町にある", "神奈川県足柄下郡箱根町", id="gun-town"),
    pytest.param("横浜市中区山下町１－１", "横浜市中区山下町１－１", id="designated-city"),
    pytest.param("渋谷区神南1-2-3 まで", "渋谷区神南1-2-3", id="tokyo-ward"),
    pytest.param("東京都町田市森野2-2-22", "東京都町田市森野2-2-22", id="machida"),
])
def test_address_found(analyzer, text, value):
    assert only(analyzer, text, "JP_ADDRESS")[0] == value


@pytest.mark.parametrize("text", [
    pytest.param("東京都内の市場は混んでいた", id="prefecture-then-particle"),
    pytest.param("東京都に行きます", id="prefecture-only"),
    pytest.param("渋谷区は広い", id="ward-without-street"),
])
def test_address_near_misses(analyzer, text):
    assert found(analyzer, text, "JP_ADDRESS") == []
