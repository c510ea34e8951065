"""How far a stream may be released, for the PII and harm scanners.

The streaming relay releases text only up to the smallest offset its scanners call safe
(:class:`guardrail.pipeline.protocol.ReleaseBounded`). These are the PII and harm bounds:
pure functions of the text that was just scanned, cheap enough to run after every scan
(microseconds; no model, no presidio).

* PII (:func:`pii_release_bound`): nothing from the start of an identifier that may still be
  growing or whose score may still change. Identifiers are runs of identifier characters
  (ASCII letters and digits, ``@._%+-:/()#``, their full-width forms, hyphen variants, 〒),
  joined across one or two spaces when either side has a digit (``+1 415 555 0132``,
  ``DE89 3704 0044``). A run that reaches the end of the text may still grow; one with a digit
  or ``@`` that ended less than ``context_after`` characters ago may still be raised above
  the threshold by a context word after it (``(mobile)``, ``普通``). Runs do not need spaces
  around them: in ``連絡先はtaro@example.co.jpです`` the run starts right after ``は``. Japanese
  addresses are written in kanji, so when ``JP_ADDRESS`` is detected a prefecture, designated
  city or Tokyo ward name in the last ``address_span`` characters (or the start of one at the
  very end) is held too. No identifier is longer than ``max_entity`` characters, so no run
  holds more than that.
* Harm (:func:`sentence_release_bound`): up to the end of the last complete sentence. The
  sentence still being written (the last one, unless a terminator and whitespace or a
  newline end the text) is held until it is complete and scanned whole; a sentence longer
  than the scanner's ``chunk_chars`` is scored in pieces anyway (:mod:`guardrail.harm.chunking`),
  so its finished pieces are released.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from guardrail.harm.chunking import _cut, sentences

# -- PII ---------------------------------------------------------------------------------
_RUN = re.compile(
    r"[0-9A-Za-z@._%+\-:/()#\[\]〒\uff01-\uff5e\u2010-\u2015\u2212\ufe63\u30fc\uff70]+"
)
_DIGIT_OR_AT = re.compile(r"[0-9\uff10-\uff19@\uff20]")
_JOINERS = frozenset(" \t\u00a0\u3000")
CONTEXT_AFTER = 24  # the PII context window after a match is 20 characters (15 for Japanese)
MAX_ENTITY = 256  # longer than any identifier redacted (an email is at most 254)
ADDRESS_SPAN = 48  # prefecture + municipality of a Japanese address fit well within this


@lru_cache(maxsize=4)
def _address_tables(names: tuple[str, ...]) -> tuple[re.Pattern[str], frozenset[str]]:
    pattern = re.compile("|".join(map(re.escape, sorted(names, key=len, reverse=True))))
    prefixes = frozenset(n[:i] for n in names for i in range(1, len(n)))
    return pattern, prefixes


def pii_release_bound(
    text: str,
    scanned_upto: int,
    address_names: Sequence[str] = (),
    fixed_holdback: int = 0,
    context_after: int = CONTEXT_AFTER,
    max_entity: int = MAX_ENTITY,
    address_span: int = ADDRESS_SPAN,
) -> int:
    """Offset up to which ``text[:scanned_upto]`` can hold no part of an identifier that a
    later scan could still find. ``fixed_holdback`` keeps that many trailing characters too
    (NER entities are words, not identifier runs). See the module docstring."""
    text = text[:scanned_upto]
    n = len(text)
    bound = n - fixed_holdback if fixed_holdback else n
    lo = max(0, n - max_entity)
    groups: list[list[int]] = []  # [start, end, has digit or @]
    last_key = 0  # the previous run's own digit-or-@ (a group joins only next to one)
    for m in _RUN.finditer(text, lo):
        s, e = m.start(), m.end()
        key = 1 if _DIGIT_OR_AT.search(m.group()) else 0
        if groups:
            prev = groups[-1]
            gap = text[prev[1] : s]
            if len(gap) <= 2 and set(gap) <= _JOINERS and (key or last_key):
                prev[1], prev[2], last_key = e, 1, key
                continue
        groups.append([s, e, key])
        last_key = key
    for s, e, key in groups:
        if e >= n or (key and e > n - context_after):
            bound = min(bound, s)
            break  # groups are in order: the first that holds is the earliest
    if address_names:
        pattern, prefixes = _address_tables(tuple(address_names))
        name = pattern.search(text, max(0, n - address_span))
        if name is not None:
            bound = min(bound, name.start())
        for size in range(min(4, n), 0, -1):
            if text[n - size :] in prefixes:
                bound = min(bound, n - size)
                break
    return max(0, bound)


# -- harm --------------------------------------------------------------------------------
# a sentence terminator (and closing quotes) followed by whitespace, or a newline, at the end
_CLOSED = re.compile(r"(?:[.!?。！？][\"'”』」)]*\s+|\n)\Z")


def sentence_release_bound(text: str, scanned_upto: int, max_chars: int) -> int:
    """Offset of the end of the last complete sentence of ``text[:scanned_upto]`` (or of the
    last finished ``max_chars`` piece of a longer sentence still being written)."""
    text = text[:scanned_upto]
    spans = sentences(text)
    if not spans or _CLOSED.search(text):
        return len(text)
    start, end = spans[-1]
    if not text[start:end].strip():
        return len(text)
    return _cut(start, end, text, max_chars)[-1][0]
