"""The PII scanner: analyzer + anonymizer per output, one worker pool."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, ClassVar

from guardrail.errors import ScannerLoadError
from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import Finding, ScanContext, ScannerInfo, ScanResult
from guardrail.pipeline.workers import WorkerPool, pool_size

if TYPE_CHECKING:
    from guardrail.runtime import Runtime

from guardrail.scanners.pii.analyzer import PiiAnalyzer, jp_entities
from guardrail.scanners.pii.config import NER_ENTITIES, STRUCTURED, OperatorSpec, PiiConfig


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
        default = [*STRUCTURED, *jp_entities()] + (list(NER_ENTITIES) if cfg.mode == "ner" else [])
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

