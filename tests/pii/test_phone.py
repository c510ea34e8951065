"""English PHONE_NUMBER: phonenumbers validation, the phone-layout fallback for numbers no
numbering plan accepts, context, and the near-misses that must not count as phones.

Each case runs through the real presidio AnalyzerEngine (pattern mode), like the scanner.
"""

from __future__ import annotations

import phonenumbers
import pytest

REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # presidio's default regions
THRESHOLD = 0.5  # the scanner's default


@pytest.fixture(scope="module")
def analyzer():
    from guardrail.scanners.pii import PiiAnalyzer

    return PiiAnalyzer("pattern")


def phones(analyzer, text: str) -> list[tuple[str, float]]:
    return [(text[m.start:m.end], m.score) for m in analyzer.analyze(text, "en")
            if m.entity == "PHONE_NUMBER"]


def strictly_valid_somewhere(number: str) -> bool:
    return any(list(phonenumbers.PhoneNumberMatcher(number, r, leniency=1)) for r in REGIONS)


@pytest.mark.parametrize("number", [
    pytest.param("+1-555-123-4567", id="nanp-plus1-unassigned"),
    pytest.param("+1.555.012.3456", id="nanp-plus1-dots"),
    pytest.param("1-123-456-7890", id="nanp-trunk1-bad-area"),
    pytest.param("001-193-123-4567", id="nanp-001"),
    pytest.param("+44 7700 900 123", id="intl-uk-short"),
    pytest.param("+354 123 4567", id="intl-iceland"),
    pytest.param("+999 12 345 678", id="intl-unknown-country-code"),
    pytest.param("28-64-66-98", id="pairs-4"),
    pytest.param("99-12-34-56", id="pairs-4-b"),
])
def test_layout_fallback_catches_numbers_no_plan_accepts(analyzer, number):
    assert not strictly_valid_somewhere(number)  # phonenumbers alone would miss it
    assert phones(analyzer, f"See you at {number} tomorrow.") == [(number, 0.5)]
    value, score = phones(analyzer, f"Call me on {number} tomorrow.")[0]
    assert value == number and score > 0.5


@pytest.mark.parametrize("text,value", [
    pytest.param("See you at (555) 123-4567 today", "(555) 123-4567", id="nanp-paren"),
    pytest.param("See you at 555-123-4567 today", "555-123-4567", id="nanp-hyphen"),
    pytest.param("See you at 555.123.4567 today", "555.123.4567", id="nanp-dots"),
    pytest.param("See you at +44 20 7946 0958 today", "+44 20 7946 0958", id="intl-uk"),
    pytest.param("See you at +1-555-123-4567 x123 today", "+1-555-123-4567 x123",
                 id="extension-x"),
    pytest.param("See you at 555-123-4567 ext. 22 today", "555-123-4567 ext. 22",
                 id="extension-ext"),
    pytest.param("See you at 345-899-3560x4587 today", "345-899-3560x4587",
                 id="extension-glued"),
])
def test_formatted_numbers_count_without_context(analyzer, text, value):
    hits = phones(analyzer, text)
    assert [v for v, _ in hits] == [value] and hits[0][1] >= THRESHOLD


def test_ungrouped_possible_numbers_need_context(analyzer):
    # 3-3-3 / 3-4 with spaces: as often a list or an address fragment as a phone
    assert phones(analyzer, "See you at 655 437 108 tomorrow")[0][1] < THRESHOLD
    assert phones(analyzer, "Send me a message on 655 437 108")[0][1] > THRESHOLD
    assert phones(analyzer, "It is 668 5702 (home)")[0][1] > THRESHOLD  # type label after
    assert phones(analyzer, "It is 655 437 108 office")[0][1] > THRESHOLD


@pytest.mark.parametrize("text", [
    pytest.param("SSN 123-45-6789", id="ssn"),
    pytest.param("ref 078-05-1120 and 078 05 1120", id="ssn-invalid-and-spaced"),
    pytest.param("on 2024-01-15", id="iso-date"),
    pytest.param("on 01/15/2024 and 15.01.2024", id="dates-slash-dot"),
    pytest.param("on 01-15-2024 10 people came", id="date-hyphen-then-number"),
    pytest.param("at 12:30:45 and 10:30-11:45", id="times"),
    pytest.param("card 4111 1111 1111 1111 or 4111-1111-1111-1111", id="visa"),
    pytest.param("amex 3782 822463 10005", id="amex"),
    pytest.param("IBAN GB82 WEST 1234 5698 7654 32", id="iban-gb"),
    pytest.param("IBAN DE89 3704 0044 0532 0130 00", id="iban-de"),
    pytest.param("hosts 192.168.100.200 and 10.20.30.40", id="ipv4"),
    pytest.param("version 1.2.3, 10.4.12 and build 10.0.19045.2965", id="versions"),
    pytest.param("order 123456789012 shipped", id="order-12-digits"),
    pytest.param("order number 555-123-4567 shipped", id="order-label-nanp-shape"),
    pytest.param("paid by credit card 060426070011", id="card-label"),
    pytest.param("account no. 0690 123 45 67", id="account-label"),
    pytest.param("timestamp 20240115103000", id="timestamp"),
    pytest.param("ISBN 978-3-16-148410-0", id="isbn"),
    pytest.param("draw 10 20 30 40 50 and 01 02 03 04 05", id="number-lists"),
    pytest.param("placeholder 11-11-11-11", id="repeated-digit"),
    pytest.param("postcode 100-0001 and 3610-114", id="postal-codes"),
    pytest.param("id 0123 4567 8901 23", id="four-digit-groups"),
])
def test_near_misses_are_not_phones(analyzer, text):
    assert [h for h in phones(analyzer, text) if h[1] >= THRESHOLD] == []


@pytest.mark.parametrize("text,entity,value", [
    pytest.param("My Number 1234 5678 9018", "JP_MY_NUMBER", "1234 5678 9018",
                 id="my-number"),
    pytest.param("corporate number 7000012050002", "JP_CORPORATE_NUMBER", "7000012050002",
                 id="corporate-number"),
    pytest.param("tel 03-1234-5678", "JP_PHONE_NUMBER", "03-1234-5678", id="jp-phone"),
])
def test_japanese_identifiers_in_english_text_keep_their_type(analyzer, text, entity, value):
    got = [(m.entity, text[m.start:m.end]) for m in analyzer.analyze(text, "en")
           if m.score >= THRESHOLD]
    assert got == [(entity, value)]
