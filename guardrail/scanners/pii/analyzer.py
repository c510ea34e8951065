"""The presidio analyzer as the PII scanner builds it: NLP engines, recognizers, overlaps."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from guardrail.errors import ScannerLoadError
from guardrail.scanners.pii.config import EN_MODEL, GINZA_LABELS, JA_MODEL
from guardrail.scanners.pii.recognizers import char_window_enhancer, fast_phone_recognizer


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
        phone_cls = fast_phone_recognizer()
        registry.add_recognizer(phone_cls(supported_language="en", context=phone_cls.CONTEXT))
        self.engine = AnalyzerEngine(
            registry=registry,
            nlp_engine=engine,
            supported_languages=["en", "ja"],
            context_aware_enhancer=char_window_enhancer(),
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




def jp_entities() -> list[str]:
    from guardrail.scanners.jp_recognizers import JP_ENTITIES

    return list(JP_ENTITIES)
