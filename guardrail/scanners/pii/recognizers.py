"""Our recognizers on top of presidio's: the English phone layout fallback and the
character-window context enhancer."""

from __future__ import annotations

from typing import Any


def fast_phone_recognizer() -> Any:
    import re

    import phonenumbers
    from presidio_analyzer import AnalysisExplanation, RecognizerResult
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from guardrail.scanners.pii_text import latin_bounded

    # Latin-bounded: "電話+1 415 555 0132まで" starts at "+" (kana and kanji are \w to re)
    candidate = re.compile(latin_bounded(r"(?<![\w+])[+(]?\d[\d \t().\-/]{5,22}\d\)?"))
    iso_date = re.compile(r"(?:19|20)\d\d[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])")
    # Never phones, whatever a numbering plan says: (text starting with) a date or the US SSN
    # layout.
    not_phone = re.compile(r"(?:(?:19|20)\d\d([-/. ])\d{1,2}\1\d{1,2}"
                           r"|\d{1,2}([-/. ])\d{1,2}\2(?:19|20)\d\d"
                           r"|\d{3}([- ])\d{2}\3\d{4})(?!\d)")
    # Well-formed phone layouts; separators are required, so bare digit runs never match.
    layout = re.compile(r"""
        (?<![\d.\-])(?<!\d[ .\-])(?:
          (?:(?:\+|00)1[ .-]?|1[ .-])?                         # NANP: +1 / 001 / 1, then
          (?:\(\d{3}\)\ ?\d{3}[ .-]|\d{3}(?P<n>[ .-])\d{3}(?P=n))\d{4}  # (555) 123-4567 etc.
        | \+\d{1,3}[ .-]?(?:\(0\)\ ?)?(?:\(\d{1,5}\)|\d{1,5})  # +44 20 7946 0958,
          (?:[ .-]\d{2,5}){1,4}                                #   +41 (0)85 806 98 67
        | (?:\(0\d{1,4}\)\ ?|0\d{1,4}(?P<t>[ -]))              # trunk 0: (07) 5331 0577,
          \d{2,8}(?:(?(t)(?P=t)|[ -])\d{2,4}){0,3}             #   0490 75 40 81, 020-7946-0958
        | \d{2}(?:-\d{2}){3,4}                                 # pairs: 28-64-66-98
        )(?![\d]|[ .\-]\d)""", re.X)
    extension = re.compile(latin_bounded(r"\s?(?:x|ext\.?\s?|extension\s?)\d{1,6}\b"), re.I)
    # An identifier label right before the number: a card/account/order... number, not a phone.
    id_label = re.compile(r"\b(?:card|account|acct|iban|order|invoice|tracking|serial|licen[cs]e|"
                          r"passport|ssn|isbn|routing|policy)\.?\s*(?:number|num|no\.?|id)?"
                          r"\s*(?:is|:|#|=)?\s*$", re.I)
    # Contact-card type labels right after the number: "655 437 108 office", "... (home)".
    type_label = re.compile(r"\s*[(\[]?(?:office|home|work|landline)\b", re.I)

    def _number_list(sub: str) -> bool:
        """Three or more groups in steps (``10 20 30 40``, ``01 02 03 04 05``) or one digit
        repeated (``11-11-11-11``): a list or a placeholder, not a phone."""
        groups = [int(g) for g in re.findall(r"\d+", sub)]
        steps = {b - a for a, b in zip(groups, groups[1:], strict=False)}
        return (len(groups) >= 3 and len(steps) == 1 and 0 not in steps) or len(
            {ch for ch in sub if ch.isdigit()}) == 1

    class FastPhoneRecognizer(PhoneRecognizer):
        """presidio's phonenumbers matcher, run only on digit-run candidates and stopping at the
        first region that parses one (x10 faster than every region over the whole text).

        Scores: a number valid for a region, or one written in a well-formed phone layout
        (``LAYOUT``: NANP ``(555) 123-4567``/``555.123.4567``/``+1-555-123-4567``, ``+``
        country code with groups, trunk-0 national groups ``0490 75 40 81``, hyphenated pairs
        ``28-64-66-98``) scores 0.5: fake or unassigned numbers in a phone layout are still
        phones. One only *possible* (right length, unknown range, no layout) scores 0.2 and
        needs a context word. Dates and SSN-shaped numbers never match; a number right after
        an identifier label (``card``, ``account``, ``order`` ...) is dropped; a trailing type
        label (``office``, ``home``, ``work``) counts as context; ``x123``/``ext. 123``
        extensions are part of the span."""

        # presidio's list less "number" (licence/account/card numbers are not phones)
        CONTEXT = ["phone", "telephone", "cell", "cellphone", "mobile", "call", "tel", "fax",
                   "desk", "contact", "reach", "answer", "sms", "whatsapp", "dial", "voicemail",
                   "message", "texting", "text me", "landline", "hotline", "helpline", "pager",
                   "switchboard"]
        LAYOUT = layout
        VALID_SCORE, LAYOUT_SCORE, POSSIBLE_SCORE = 0.5, 0.5, 0.2

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            out = []
            for m in candidate.finditer(text):
                sub = m.group(0)
                if not 7 <= sum(ch.isdigit() for ch in sub) <= 15 or iso_date.match(sub):
                    continue  # cards, IBAN tails, long ids and timestamps are not phones
                if (not_phone.match(sub) or _number_list(sub)
                        or id_label.search(text, max(0, m.start() - 40), m.start())):
                    continue
                found = self._match(sub, 1 if self.leniency is None else int(self.leniency),
                                    nlp_artifacts, self.VALID_SCORE)
                if not found:
                    found = self._layouts(sub) or self._match(sub, 0, nlp_artifacts,
                                                              self.POSSIBLE_SCORE)
                for r in found:
                    r.start += m.start()
                    r.end += m.start()
                    ext = extension.match(text, r.end)
                    if ext:
                        r.end = ext.end()
                    if type_label.match(text, r.end):
                        r.score = min(1.0, r.score + 0.35)
                        r.recognition_metadata[
                            RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
                    out.append(r)
            return out

        def _match(self, sub: str, leniency: int, nlp_artifacts: Any, score: float) -> list[Any]:
            for region in self.supported_regions:
                found = list(phonenumbers.PhoneNumberMatcher(sub, region, leniency=leniency))
                if found:
                    results = [self._get_recognizer_result(  # type: ignore[no-untyped-call]
                                   f, sub, region, nlp_artifacts)
                               for f in found]
                    for r in results:
                        r.score = score
                    return results
            return []

        def _layouts(self, sub: str) -> list[Any]:
            name = str(getattr(self, "name", type(self).__name__))  # presidio's default name
            out = []
            for lm in layout.finditer(sub):
                value = lm.group(0)
                groups = re.findall(r"\d+", value)
                digits = sum(map(len, groups))
                if (not 8 <= digits <= 15 or not_phone.match(value)
                        or sum(len(g) == 4 for g in groups) >= 3):  # cards, My Number, IBAN
                    continue
                out.append(RecognizerResult(
                    entity_type=self.supported_entities[0], start=lm.start(), end=lm.end(),
                    score=self.LAYOUT_SCORE,
                    analysis_explanation=AnalysisExplanation(
                        recognizer=name, original_score=self.LAYOUT_SCORE,
                        textual_explanation="phone layout (no numbering plan validates it)"),
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id},
                ))
            return out

    return FastPhoneRecognizer


def char_window_enhancer() -> Any:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class CharWindowContextEnhancer(ContextAwareEnhancer):
        """Context words as lower-cased substrings of a character window around the match.

        presidio's lemma enhancer needs lemmas (a blank pipeline has none), cannot see words
        in unsegmented Japanese, and scans every token per result; this is O(results)."""

        def __init__(self, before: int = 40, after: int = 20) -> None:
            super().__init__(0.35, 0.4, before, after)

        def enhance_using_context(
            self, text: str, raw_results: list[Any], nlp_artifacts: Any,
            recognizers: list[Any], context: list[str] | None = None,
        ) -> list[Any]:
            by_id = {r.id: r for r in recognizers}
            lowered = text.lower()
            extra = [w.lower() for w in context or []]
            for res in raw_results:
                meta = res.recognition_metadata or {}
                rec = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
                if rec is None or meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                    continue
                words = [w.lower() for w in rec.context or []] + extra
                if not words:
                    continue
                window = (
                    lowered[max(0, res.start - self.context_prefix_count) : res.start]
                    + " " + lowered[res.end : res.end + self.context_suffix_count]
                )
                if any(w in window for w in words):
                    res.score = min(
                        self.MAX_SCORE,
                        max(res.score + self.context_similarity_factor,
                            self.min_score_with_context_similarity),
                    )
                    meta[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
            return raw_results

    return CharWindowContextEnhancer()


