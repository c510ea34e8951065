"""Japanese personal identifiers as presidio recognizers (presidio ships none).

Every recognizer runs on text already passed through :func:`normalise_for_pii` (full-width
digits, letters and hyphen variants folded to ASCII, spans mapped back by the caller), so the
patterns here only need ASCII digits and ``-``.

Scores: a structurally valid match gets ``base_score``; a context word (マイナンバー, 電話,
口座 ...) within ``CONTEXT_BEFORE`` characters before or ``CONTEXT_AFTER`` after raises it to
``context_score``. Recognizers with ``requires_context`` report nothing without one (a bare
7-digit number is not a bank account). Check digits are validated where the identifier has
one: a random 12-digit number is not a My Number.

This module imports presidio at module level; import it only from ``load()``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import ClassVar

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from guardrail.scanners.pii_text import introduced_as_other

# Hyphen-like characters folded to "-" (the katakana prolonged sound mark only between digits).
_HYPHENS = dict.fromkeys("－‐‑‒–—―−﹣ｰ", "-")
_PROLONGED = {"ー", "ｰ"}
CONTEXT_BEFORE = 30
CONTEXT_AFTER = 15


def normalise_for_pii(text: str) -> tuple[str, list[int]]:
    """NFKC per character (no casefolding) plus hyphen folding.

    Returns the normalised text and, for each of its characters, the index of the source
    character it came from, so a span ``(s, e)`` maps back to ``(index[s], index[e-1] + 1)``.
    """
    out: list[str] = []
    index: list[int] = []
    n = len(text)
    for i, ch in enumerate(text):
        if ch.isascii():
            out.append(ch)
            index.append(i)
            continue
        if ch in _PROLONGED:
            prev = text[i - 1] if i else ""
            nxt = text[i + 1] if i + 1 < n else ""
            if _is_digit(prev) and _is_digit(nxt):
                out.append("-")
                index.append(i)
                continue
        if ch in _HYPHENS and ch not in _PROLONGED:
            out.append("-")
            index.append(i)
            continue
        norm = unicodedata.normalize("NFKC", ch)
        out.append(norm)
        index.extend([i] * len(norm))
    return "".join(out), index


def _is_digit(ch: str) -> bool:
    return bool(ch) and ("0" <= ch <= "9" or "０" <= ch <= "９")


def my_number_valid(digits: str) -> bool:
    """個人番号 check digit (MIC ordinance): Qn = n+1 (n<=6), n-5 (n>=7), Pn from the right."""
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = digits[:11]
    total = 0
    for n in range(1, 12):
        p = int(body[11 - n])
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    rem = total % 11
    check = 0 if rem <= 1 else 11 - rem
    return check == int(digits[11])


def corporate_number_valid(digits: str) -> bool:
    """法人番号 leading check digit: 9 - (sum Pn*Qn mod 9), Qn = 1 odd n / 2 even n."""
    if len(digits) != 13 or not digits.isdigit():
        return False
    body = digits[1:]
    total = 0
    for n in range(1, 13):
        p = int(body[12 - n])
        total += p * (1 if n % 2 else 2)
    return 9 - total % 9 == int(digits[0])


_JP_PHONE_LENGTHS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("060", "070", "080", "090", "050", "0800"), 11),
    (("0120", "0570"), 10),
)


def jp_phone_valid(candidate: str) -> bool:
    """Japanese numbering plan: landline 10 digits (0 + area code of 1-4 digits + subscriber),
    mobile 060/070/080/090, IP 050 and 0800 toll-free 11 digits, 0120 and 0570 10 digits."""
    digits = re.sub(r"\D", "", candidate)
    if candidate.lstrip().startswith("+"):
        if not digits.startswith("81"):
            return False
        digits = "0" + digits[2:].removeprefix("0")  # "+81 (0)3 ..." keeps one trunk 0
    if not digits.startswith("0") or len(digits) < 10:
        return False
    for prefixes, length in _JP_PHONE_LENGTHS:
        if digits.startswith(prefixes):
            return len(digits) == length
    if digits[1] == "0" or digits.startswith("020"):
        return False  # 00x international prefixes, 020 M2M/pager
    return len(digits) == 10


class JapaneseRecognizer(EntityRecognizer):
    """A regex + validator + character-window context recognizer for Japanese text.

    Subclasses set ``ENTITY``, ``PATTERN`` (run on normalised text), ``CONTEXT`` words and,
    optionally, override :meth:`validate` and :meth:`score_for`. With ``OTHER_KINDS`` set, a
    match whose nearest label names another kind of number (注文番号, tracking number ...) is
    dropped: see :func:`~guardrail.scanners.pii_text.introduced_as_other`.
    """

    ENTITY: ClassVar[str]
    PATTERN: ClassVar[re.Pattern[str]]
    CONTEXT: ClassVar[tuple[str, ...]] = ()
    base_score: ClassVar[float] = 0.6
    context_score: ClassVar[float] = 0.95
    requires_context: ClassVar[bool] = False
    OTHER_KINDS: ClassVar[bool] = False

    def __init__(self, supported_language: str = "ja") -> None:
        super().__init__(
            supported_entities=[self.ENTITY],
            name=type(self).__name__,
            supported_language=supported_language,
            context=list(self.CONTEXT),
        )
        self._context_lower = tuple(w.lower() for w in self.CONTEXT)

    def load(self) -> None:  # nothing to load: patterns are compiled at class creation
        return None

    def validate(self, match: re.Match[str]) -> bool:
        return True

    def span_of(self, match: re.Match[str]) -> tuple[int, int]:
        return match.span()

    def other_kind(self, match: re.Match[str], text: str, start: int, end: int) -> bool:
        return self.OTHER_KINDS and introduced_as_other(
            text, start, end, self._context_lower, CONTEXT_BEFORE, CONTEXT_AFTER)

    def has_context(self, text: str, start: int, end: int) -> bool:
        before = text[max(0, start - CONTEXT_BEFORE) : start].lower()
        after = text[end : end + CONTEXT_AFTER].lower()
        return any(w in before or w in after for w in self._context_lower)

    def score_for(self, match: re.Match[str], context: bool) -> float | None:
        if context:
            return self.context_score
        return None if self.requires_context else self.base_score

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
    ) -> list[RecognizerResult]:
        if entities and self.ENTITY not in entities:
            return []
        results: list[RecognizerResult] = []
        for m in self.PATTERN.finditer(text):
            if not self.validate(m):
                continue
            start, end = self.span_of(m)
            if self.other_kind(m, text, start, end):
                continue
            context = self.has_context(text, start, end)
            score = self.score_for(m, context)
            if score is None:
                continue
            results.append(
                RecognizerResult(
                    entity_type=self.ENTITY,
                    start=start,
                    end=end,
                    score=min(1.0, score),
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: type(self).__name__,
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY: True,
                        "context": context,
                    },
                )
            )
        return results


_NOT_DIGIT_BEFORE = r"(?<![0-9A-Za-z])(?<![0-9][ -])"
_NOT_DIGIT_AFTER = r"(?![0-9])(?![ -][0-9])"


class MyNumberRecognizer(JapaneseRecognizer):
    """個人番号 (My Number): 12 digits, optionally 4-4-4 with one separator kind; not when
    introduced as another number (注文番号, 伝票番号, order number ...)."""

    ENTITY = "JP_MY_NUMBER"
    PATTERN = re.compile(_NOT_DIGIT_BEFORE + r"\d{4}([ -]?)\d{4}\1\d{4}" + _NOT_DIGIT_AFTER)
    CONTEXT = ("マイナンバー", "個人番号", "my number", "mynumber", "通知カード", "番号カード")
    base_score = 0.75
    context_score = 1.0
    OTHER_KINDS = True

    def validate(self, match: re.Match[str]) -> bool:
        return my_number_valid(re.sub(r"\D", "", match.group(0)))


class CorporateNumberRecognizer(JapaneseRecognizer):
    """法人番号: 13 digits with a leading check digit; ``T`` + it is an invoice registration
    number (適格請求書発行事業者登録番号)."""

    ENTITY = "JP_CORPORATE_NUMBER"
    PATTERN = re.compile(
        r"(?<![0-9A-Za-z])(?<![0-9][ -])(T[ -]?)?\d([ -]?)\d{4}\2\d{4}\2\d{4}" + _NOT_DIGIT_AFTER
    )
    CONTEXT = ("法人番号", "登録番号", "インボイス", "corporate number", "適格請求書",
               "registration number")
    base_score = 0.6
    context_score = 0.95
    OTHER_KINDS = True

    def validate(self, match: re.Match[str]) -> bool:
        return corporate_number_valid(re.sub(r"\D", "", match.group(0)))

    def other_kind(self, match: re.Match[str], text: str, start: int, end: int) -> bool:
        # T + 13 digits is the registration number's own form, whatever it is called
        return not match.group(1) and super().other_kind(match, text, start, end)

    def score_for(self, match: re.Match[str], context: bool) -> float | None:
        if match.group(1):
            return self.context_score
        return super().score_for(match, context)


class JpPhoneRecognizer(JapaneseRecognizer):
    """Japanese phone numbers: landline (area codes of 2-5 digits with the trunk 0), mobile
    060/070/080/090, IP 050, toll-free 0120/0800, navi-dial 0570, and +81 forms."""

    ENTITY = "JP_PHONE_NUMBER"
    PATTERN = re.compile(
        r"(?<![0-9A-Za-z+])(?<![0-9]-)"
        r"(?:"
        r"(?P<intl>\+81[ -]?(?:\(0\)[ -]?)?\d{1,4}(?:[ -]|\)\s?)?\d{1,4}[ -]?\d{3,4})"
        r"|(?P<paren>\(0\d{1,4}\)\s?\d{1,4}-?\d{3,4})"
        r"|(?P<sep>0\d{1,4}(?:[ -]|\()\d{1,4}(?:[ -]|\))\d{3,4})"
        r"|(?P<bare>0\d{9,10})"
        r")" + _NOT_DIGIT_AFTER
    )
    CONTEXT = (
        "電話", "tel", "phone", "携帯", "連絡先", "fax", "ファックス", "ファクス", "呼出",
        "call", "mobile", "問い合わせ", "問合せ", "お問合せ", "フリーダイヤル", "ナビダイヤル",
    )
    base_score = 0.75
    context_score = 1.0

    def validate(self, match: re.Match[str]) -> bool:
        return jp_phone_valid(match.group(0))

    def score_for(self, match: re.Match[str], context: bool) -> float | None:
        if context:
            return self.context_score
        if match.group("bare"):
            return 0.4  # an unseparated 10/11-digit run is weak evidence on its own
        return 0.85 if match.group("intl") else self.base_score


class JpPostalCodeRecognizer(JapaneseRecognizer):
    """郵便番号: ``〒123-4567`` (strong) or ``123-4567`` / ``1234567`` (needs context)."""

    ENTITY = "JP_POSTAL_CODE"
    PATTERN = re.compile(
        r"(?P<mark>〒\s?)?(?<![0-9A-Za-z])(?<![0-9]-)\d{3}(?P<sep>-)?\d{4}" + _NOT_DIGIT_AFTER
    )
    CONTEXT = ("郵便番号", "郵便", "住所", "所在地", "postal", "zip", "〒")
    base_score = 0.3
    context_score = 0.85

    def span_of(self, match: re.Match[str]) -> tuple[int, int]:
        return match.start() + len(match.group("mark") or ""), match.end()

    def has_context(self, text: str, start: int, end: int) -> bool:
        if super().has_context(text, start, end):
            return True
        return bool(_PREFECTURE_START.match(text, end + (text[end : end + 1] == " ")))

    def score_for(self, match: re.Match[str], context: bool) -> float | None:
        if match.group("mark"):
            return 0.95
        if not match.group("sep"):
            return 0.7 if context else None
        return self.context_score if context else self.base_score


class JpDriverLicenseRecognizer(JapaneseRecognizer):
    """運転免許証番号: 12 digits, the first two a public safety commission code (10-97).
    Needs context: 12-digit runs are too common on their own."""

    ENTITY = "JP_DRIVER_LICENSE"
    PATTERN = re.compile(_NOT_DIGIT_BEFORE + r"(?:1\d|[2-8]\d|9[0-7])\d{10}" + _NOT_DIGIT_AFTER)
    CONTEXT = ("免許", "運転免許", "免許証", "driver", "licence", "license")
    context_score = 0.9
    requires_context = True


class JpPassportRecognizer(JapaneseRecognizer):
    """旅券番号: two capital letters and seven digits (e.g. TK1234567). Context lifts it."""

    ENTITY = "JP_PASSPORT"
    PATTERN = re.compile(r"(?<![0-9A-Za-z])[A-Z]{2}\d{7}(?![0-9A-Za-z])")
    CONTEXT = ("旅券", "パスポート", "passport")
    base_score = 0.4
    context_score = 0.9


class JpBankAccountRecognizer(JapaneseRecognizer):
    """口座番号: seven digits next to account words (口座, 普通, 当座 ...); nothing without."""

    ENTITY = "JP_BANK_ACCOUNT"
    PATTERN = re.compile(_NOT_DIGIT_BEFORE + r"\d{7}" + _NOT_DIGIT_AFTER)
    CONTEXT = (
        "口座", "普通", "当座", "預金", "振込", "振り込み", "支店", "account", "bank",
    )
    context_score = 0.85
    requires_context = True


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_CARD_IIN = re.compile(r"4|5[0-8]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3[0689]|35|6|1800|2131")


class CardNumberRecognizer(JapaneseRecognizer):
    """Payment card numbers presidio's CREDIT_CARD regex misses (Mastercard 2-series, 19-digit
    Visa, 12-19 digit Maestro, 15-digit JCB 1800/2131) or writes in full-width digits:
    12-19 digits, Luhn-valid, a known issuer prefix. Language-neutral (カード, card ...)."""

    ENTITY = "CREDIT_CARD"
    PATTERN = re.compile(r"(?<!\+)" + _NOT_DIGIT_BEFORE + r"\d{4}(?:[ -]?\d{2,7}){2,4}"
                         + _NOT_DIGIT_AFTER)
    CONTEXT = ("card", "カード", "credit", "クレジット", "visa", "mastercard", "amex", "jcb",
               "cc ", "cc#", "決済", "お支払")
    base_score = 0.6
    context_score = 1.0

    def validate(self, match: re.Match[str]) -> bool:
        digits = re.sub(r"\D", "", match.group(0))
        return 12 <= len(digits) <= 19 and luhn_valid(digits) and bool(_CARD_IIN.match(digits))


PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県",
)
DESIGNATED_CITIES = (
    "札幌市", "仙台市", "さいたま市", "千葉市", "横浜市", "川崎市", "相模原市", "新潟市",
    "静岡市", "浜松市", "名古屋市", "京都市", "大阪市", "堺市", "神戸市", "岡山市", "広島市",
    "北九州市", "福岡市", "熊本市",
)
TOKYO_WARDS = (
    "千代田区", "中央区", "港区", "新宿区", "文京区", "台東区", "墨田区", "江東区", "品川区",
    "目黒区", "大田区", "世田谷区", "渋谷区", "中野区", "杉並区", "豊島区", "北区", "荒川区",
    "板橋区", "練馬区", "足立区", "葛飾区", "江戸川区",
)
_PREFECTURE_START = re.compile("|".join(PREFECTURES))
_NAME = r"[一-龥々ぁ-んァ-ヶー]"
# A municipality does not start with a particle: 東京都内の市場 is no address.
_NAME_START = r"(?![のはがをにでとへもや内])" + _NAME
_STREET = (
    rf"(?:{_NAME}{{0,10}}?(?:\d{{1,4}}(?:丁目|番地|番|号|-))+\d{{0,4}}号?"
    rf"|{_NAME}{{0,10}}?\d{{1,4}}(?![0-9]))"
)
_MUNICIPALITY = (
    rf"(?:{_NAME_START}{_NAME}{{0,5}}?郡)?{_NAME_START}{_NAME}{{0,5}}?[市区町村]"
    rf"(?:{_NAME_START}{_NAME}{{0,4}}?区)?"
)


class JpAddressRecognizer(JapaneseRecognizer):
    """住所: a prefecture followed by a municipality (市区町村, 郡), with the street part when
    present; or a designated city / Tokyo ward followed by a street number."""

    ENTITY = "JP_ADDRESS"
    PATTERN = re.compile(
        rf"(?:{'|'.join(PREFECTURES)}){_MUNICIPALITY}(?:{_STREET})?"
        rf"|(?:{'|'.join(DESIGNATED_CITIES)})(?:{_NAME}{{1,5}}?区)?{_STREET}"
        rf"|(?<!{_NAME})(?:{'|'.join(TOKYO_WARDS)}){_STREET}"
    )
    CONTEXT = ("住所", "所在地", "居住", "現住所", "address", "〒", "お届け先", "送付先")
    base_score = 0.85
    context_score = 0.95


ALL_RECOGNIZERS: tuple[Callable[..., JapaneseRecognizer], ...] = (
    MyNumberRecognizer,
    CorporateNumberRecognizer,
    JpPhoneRecognizer,
    JpPostalCodeRecognizer,
    JpDriverLicenseRecognizer,
    JpPassportRecognizer,
    JpBankAccountRecognizer,
    JpAddressRecognizer,
)
JP_ENTITIES: tuple[str, ...] = tuple(r.ENTITY for r in ALL_RECOGNIZERS)  # type: ignore[attr-defined]
