"""PII in running text: identifiers written straight against Japanese (or any non-Latin) text.

Japanese puts no space between words, so an identifier is often glued to kana or kanji:
``連絡先はtaro@example.co.jpです``, ``IPは192.168.1.1です``. presidio's patterns use ``\\b`` and
``\\w``; in Python regex kana and kanji are ``\\w``, so ``\\b`` finds no boundary between ``は``
and ``t``, and the e-mail pattern's ``\\w+`` runs on into ``です`` (then the domain fails the TLD
check and nothing is reported). :func:`latin_bounded` rewrites such a pattern so that only
Latin-script letters, digits and ``_`` count as word characters: the identifier stops where
the Japanese starts, and Latin text (``josé@example.com``, ``abc192.168.1.1``) behaves as
before. presidio's e-mail, card, IP, US SSN and URL recognizers are registered with patterns
rewritten this way.

:func:`introduced_as_other` decides, for a number that fits an identifier's shape, whether the
nearest label before it (or, with none before, after it) names another kind of number: a
12-digit 注文番号 / 伝票番号 / tracking number is not a My Number whatever its check digit.

Import only from ``PiiAnalyzer`` (the recognizer factories import presidio).
"""

from __future__ import annotations

import re
from typing import Any

from guardrail.errors import ScannerLoadError

# Word characters for boundaries: digits, ASCII and Latin-script letters (Latin-1, Extended-A/B,
# Extended Additional), combining diacritics, "_". Kana, kanji, full-width punctuation and any
# other script are boundaries.
WORD = (r"0-9A-Za-z_\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
        r"\u0300-\u036f\u1e00-\u1eff")
BOUNDARY = rf"(?:(?<![{WORD}])(?=[{WORD}])|(?<=[{WORD}])(?![{WORD}]))"


def latin_bounded(pattern: str) -> str:
    r"""``pattern`` with ``\w`` limited to :data:`WORD` (inside and outside character classes)
    and ``\b`` a boundary between :data:`WORD` and anything else."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            esc = pattern[i : i + 2]
            if esc in (r"\W", r"\B"):
                raise ValueError(f"{esc} is not rewritten: {pattern!r}")
            if esc == r"\w":
                out.append(WORD if in_class else f"[{WORD}]")
            elif esc == r"\b" and not in_class:
                out.append(BOUNDARY)
            else:
                out.append(esc)
            i += 2
            continue
        out.append(c)
        i += 1
        if c == "[" and not in_class:
            in_class = True
            for lead in ("^", "]"):  # "[^..." and a literal "]" first in the class
                if pattern[i : i + 1] == lead:
                    out.append(lead)
                    i += 1
        elif c == "]" and in_class:
            in_class = False
    return "".join(out)


def latin_patterns(patterns: list[Any]) -> list[Any]:
    """presidio ``Pattern`` objects with :func:`latin_bounded` regexes (same names, scores)."""
    from presidio_analyzer import Pattern

    return [Pattern(p.name, latin_bounded(p.regex), p.score) for p in patterns]


def running_text_recognizers(language: str) -> list[Any]:
    """presidio's e-mail (offline TLD check), credit card, IP and URL recognizers with
    Latin-bounded patterns (URL paths ASCII only), plus US SSN for English."""
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IpRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    email = offline_email_recognizer()
    out = [
        email(supported_language=language, patterns=latin_patterns(email.PATTERNS)),
        CreditCardRecognizer(supported_language=language,
                             patterns=latin_patterns(CreditCardRecognizer.PATTERNS)),
        IpRecognizer(supported_language=language, patterns=latin_patterns(IpRecognizer.PATTERNS)),
        UrlRecognizer(supported_language=language, patterns=url_patterns()),
    ]
    if language == "en":
        out.append(UsSsnRecognizer(supported_language=language,
                                   patterns=latin_patterns(UsSsnRecognizer.PATTERNS)))
    return out


def offline_email_recognizer() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)  # bundled list, no fetch

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    return OfflineEmailRecognizer


# RFC 3986 characters less presidio's exclusions ("'()<>) and whitespace: a URL path is ASCII
# here (in running Japanese text a raw IRI path cannot be told from the sentence after it), and
# does not end in sentence punctuation.
_PATH = r"(?:/(?:[A-Za-z0-9\-._~:/?#\[\]@!$&*+,;=%]*[A-Za-z0-9\-_~/#\[\]@$&*+=%])?)?"


def url_patterns() -> list[Any]:
    """presidio's URL patterns (with and without a scheme) on :data:`_PATH` paths, ending at a
    Latin boundary. URL is not in the scanner's default entities: ask for it."""
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import UrlRecognizer

    host, path = UrlRecognizer.BASE_URL_REGEX, r"(?:/[^\s()<>\"']*)?)"
    if not host.endswith(path):
        raise ScannerLoadError("pii", "presidio", None,
                               "presidio's URL pattern changed: revisit url_patterns()")
    base = host[: -len(path)] + _PATH + ")" + rf"(?![{WORD}\-])"
    return [
        Pattern("Standard Url", rf"(?i)(?<![{WORD}.\-])(?:https?://){base}", 0.6),
        Pattern("Non schema URL", rf"(?i)(?<![{WORD}.\-@/])" + base, 0.5),
    ]


# Labels that introduce a number of another kind. Matched on normalised (NFKC), lower-cased
# text: 注文ＩＤ arrives as 注文id.
_JA_KINDS = (
    "ご?注文", "受注", "発注", "オーダー", "伝票", "送り状", "追跡", "配送", "荷物",
    "お?問い?合わ?せ", "受付", "会員", "顧客", "お客様", "予約", "管理", "整理",
    "請求書?", "契約", "口座", "取引", "決済", "製造", "シリアル", "商品", "申し?込み?",
    "証券", "受験", "学籍", "社員", "従業員", "患者", "診察券", "レシート", "領収書",
    "チケット", "免許証?", "電話", "法人", "登録", "基礎年金", "被?保険者", "車台",
)
_EN_KINDS = (
    "order", "invoice", "tracking", "reference", "ref", "booking", "confirmation",
    "reservation", "customer", "member(?:ship)?", "account", "acct", "serial", "transaction",
    "receipt", "ticket", "shipment", "parcel", "case", "policy", "part", "item", "product",
    "licen[cs]e", "passport", "phone", "corporate", "registration",
)
OTHER_NUMBER_LABELS = re.compile(
    rf"(?:{'|'.join(_JA_KINDS)})\s*(?:番号|no\.?|id|コード|#)"
    rf"|(?<![a-z])(?:{'|'.join(_EN_KINDS)})\s*(?:number|num|no\.?|id|code|#)"
    r"|(?<![a-z])(?:order|invoice|tracking|receipt|ticket|booking|reservation)(?![a-z])"
    r"(?!\s+to(?![a-z]))",  # not "in order to"
)


def introduced_as_other(
    text: str, start: int, end: int, own: tuple[str, ...], before: int, after: int,
    labels: re.Pattern[str] = OTHER_NUMBER_LABELS,
) -> bool:
    """Whether the nearest label to ``text[start:end]`` is one of ``labels`` rather than one of
    the identifier's ``own`` words (lower case): the label before it within ``before`` chars,
    or, with none before, the first one after it within ``after``. An own word overlapping a
    label wins (法人番号 is a corporate number's own word and, for a My Number, another kind)."""
    head = text[max(0, start - before) : start].lower()
    other = [m.start() for m in labels.finditer(head)]
    own_end = max((head.rfind(w) + len(w) for w in own if w in head), default=-1)
    if other:
        return own_end <= other[-1]
    if own_end >= 0:
        return False
    tail = text[end : end + after].lower()
    m = labels.search(tail)
    if m is None:
        return False
    own_start = min((tail.find(w) for w in own if w in tail), default=len(tail))
    return m.end() <= own_start
