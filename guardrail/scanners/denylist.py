"""Denylist scanner: terms and regular expressions, matched on NFKC + casefolded text.

Full-width Japanese (ＡＢＣ, ｶﾀｶﾅ) and case variants of a term match; spans are reported in
the original text so that redaction replaces exactly what the client would have seen.

The scanner runs inline on the event loop, so its work is bounded: policy patterns are
compiled with the ``regex`` package (Python's ``re`` syntax) and every scan runs under
``match_timeout_ms``. A pattern that backtracks catastrophically on some text ends the scan
with :class:`guardrail.errors.ScanTimeoutError`, a timeout the runner records and answers with
the scanner's ``on_error``; it never holds the loop (and every other request) for longer.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, ClassVar, Literal

import regex
from pydantic import Field, field_validator

from guardrail.errors import ScanTimeoutError
from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import Finding, ScanContext, ScannerInfo, ScanResult, normalise

if TYPE_CHECKING:
    from guardrail.runtime import Runtime


class DenylistConfig(ScannerConfig):
    type: Literal["denylist"] = "denylist"
    category: str = Field("denylist", description="Category recorded on findings.")
    terms: list[str] = Field(default_factory=list, description="Literal terms (normalised).")
    patterns: list[str] = Field(
        default_factory=list, description="Regular expressions, run on normalised text."
    )
    word_boundary: bool = Field(
        True, description="Terms of ASCII word characters match whole words only."
    )
    match_timeout_ms: float = Field(
        50, gt=0, le=5000, description="Time bound of one scan's matching (it runs on the "
        "event loop): past it the scan fails as a timeout, by on_error."
    )

    @field_validator("patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                regex.compile(p)
            except regex.error as exc:
                raise ValueError(f"invalid regular expression {p!r}: {exc}") from exc
        return patterns


class DenylistScanner:
    config_class: ClassVar[type[ScannerConfig]] = DenylistConfig
    inline: ClassVar[bool] = True  # pure CPU, microseconds: run without a task

    def __init__(self, config: DenylistConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.name = config.instance_name
        self._regex: regex.Pattern[str] | None = None
        self._longest = 0

    def load(self) -> None:
        alts: list[str] = []
        for term in self.config.terms:
            t = normalise(term)
            esc = regex.escape(t)
            if self.config.word_boundary and re.fullmatch(r"\w+", t, re.ASCII):
                esc = rf"(?<![a-z0-9_]){esc}(?![a-z0-9_])"
            alts.append(esc)
            self._longest = max(self._longest, len(t))
        alts.extend(f"(?:{p})" for p in self.config.patterns)
        self._regex = regex.compile("|".join(alts)) if alts else None
        self._info = ScannerInfo(
            name=self.name,
            backend="regex",
            details={"terms": len(self.config.terms), "patterns": len(self.config.patterns)},
        )

    def info(self) -> ScannerInfo:
        return self._info

    @property
    def holdback_chars(self) -> int:
        return max(self._longest, 64 if self.config.patterns else 0)

    def _matches(self, norm: str) -> list[regex.Match[str]]:
        assert self._regex is not None
        limit = self.config.match_timeout_ms / 1000
        try:
            return list(self._regex.finditer(norm, timeout=limit))
        except TimeoutError:
            raise ScanTimeoutError(
                f"denylist patterns found no answer within {self.config.match_timeout_ms:g} ms "
                f"(match_timeout_ms) on {len(norm)} characters") from None

    async def scan(self, ctx: ScanContext) -> ScanResult:
        start = time.perf_counter()
        findings: list[Finding] = []
        if self._regex is not None:
            norm, index = ctx.normalised
            for m in self._matches(norm):
                if m.end() <= m.start():
                    continue
                s = index[m.start()]
                k = m.end()  # end of the source segment that holds the match's last char
                e = max(index[k] if k < len(index) else len(ctx.text), index[k - 1] + 1)
                findings.append(
                    Finding(
                        scanner=self.name,
                        kind="denylist",
                        category=self.config.category,
                        score=1.0,
                        span=(s, e),
                        evidence={"matched": m.group(0)},
                    )
                )
        return ScanResult(
            scanner=self.name,
            info=self._info,
            findings=tuple(findings),
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )
