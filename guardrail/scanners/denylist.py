"""Denylist scanner: terms and regular expressions, matched on NFKC + casefolded text.

Full-width Japanese (ＡＢＣ, ｶﾀｶﾅ) and case variants of a term match; spans are reported in
the original text so that redaction replaces exactly what the client would have seen.

The scanner runs inline on the event loop, so its work is bounded: policy patterns are
compiled with the ``regex`` package (Python's ``re`` syntax) and every scan runs under
``match_timeout_ms``. A pattern that backtracks catastrophically on some text ends the scan
with :class:`guardrail.errors.ScanTimeoutError`, a timeout the runner records and answers with
the scanner's ``on_error``; it never holds the loop (and every other request) for longer.

In a stream the scanner bounds its own release (:meth:`DenylistScanner.safe_release`): text
is held only from the earliest place where a term or pattern could still match once more text
arrives, a *partial* match reaching the end of the text, instead of a fixed 64-character window.
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from typing import TYPE_CHECKING, ClassVar, Literal

import regex
from pydantic import Field, field_validator

from guardrail.errors import ScanTimeoutError
from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import (
    Finding,
    ScanContext,
    ScannerInfo,
    ScanResult,
    normalise,
    normalise_with_map,
)

if TYPE_CHECKING:
    from guardrail.runtime import Runtime


# Most a stream holds for one open match (a pattern such as ``sk-[a-z0-9]{20,}`` can grow without
# end): past it the match's start is released, as the old fixed window released it at 64.
MAX_HOLD_CHARS = 4096
# Wall bound of the second try of a match starved of CPU (DenylistScanner._matches), as a
# multiple of match_timeout_ms.
STARVED_RETRY = 10


@functools.cache
def _starters() -> frozenset[str]:
    """Characters whose normalised form changes when a combining or voicing mark follows (the
    first half of a canonical pair, or a compatibility form that normalises to one: ``ｶ`` with
    ``ﾞ`` is ``ガ``). Built once (about a quarter of a second), at the scanner's load."""
    pairs: set[str] = set()
    compat: list[str] = []
    for cp in range(0x80, 0x110000):
        d = unicodedata.decomposition(chr(cp))
        if not d:
            continue
        if d.startswith("<"):
            compat.append(chr(cp))
        elif len(parts := d.split()) == 2:
            pairs.add(chr(int(parts[0], 16)))
    pairs |= {c for c in compat if (n := unicodedata.normalize("NFKC", c)) and n[-1] in pairs}
    return frozenset(pairs)


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
        self._open: regex.Pattern[str] | None = None
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
        if alts:
            _starters()
        # The release probe: the same alternation followed by "the end, then one more
        # character", which no text holds. Searched with partial=True, it can only end as a
        # partial match, at the leftmost start from which some match reaches the end of the
        # text: a term or pattern still being written, a complete match there that more text
        # may extend (greedy ``{20,}``), or one whose lookahead or ``$``/``\b`` has not been
        # decided yet. A complete match that ends earlier cannot grow and is the scan's.
        self._open = regex.compile(f"(?:{'|'.join(alts)})\\Z[\\s\\S]") if alts else None
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

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """Offset into ``text`` before which no term or pattern can still match once more text
        arrives: the source offset of the earliest partial match (or complete match that may
        grow) reaching the end of ``text[:scanned_upto]``, on the same NFKC + casefolded text
        :meth:`scan` matches. Never more than ``scanned_upto``; a last character that a voicing
        or combining mark still to come would change (``ｶ`` then ``ﾞ``) is held too, and
        at most :data:`MAX_HOLD_CHARS` are held for one match. Runs under
        ``match_timeout_ms``; past it, the fixed :attr:`holdback_chars` window."""
        if self._open is None or scanned_upto <= 0:
            return max(0, scanned_upto)
        head = text[:scanned_upto]
        norm, index = normalise_with_map(head)
        n = len(head)
        try:
            m = self._open.search(norm, partial=True,
                                  timeout=self.config.match_timeout_ms / 1000)
        except TimeoutError:
            return max(0, n - self.holdback_chars)
        bound = n
        if m is not None and m.start() < len(norm):
            bound = index[m.start()]  # the source segment holding the match's first char
        if not head[-1].isascii():  # the last segment may still take a combining mark
            last = head[index[-1]:] if norm else head
            if len(last) > 1 or last in _starters() or unicodedata.combining(last) \
                    or last in "\uff9e\uff9f\u3099\u309a":
                bound = min(bound, index[-1] if norm else 0)
        return max(bound, n - max(MAX_HOLD_CHARS, self.holdback_chars), 0)

    def _matches(self, norm: str) -> list[regex.Match[str]]:
        assert self._regex is not None
        limit = self.config.match_timeout_ms / 1000
        cpu = time.thread_time()
        try:
            return list(self._regex.finditer(norm, timeout=limit))
        except TimeoutError:
            # The regex package's bound is wall-clock. A pattern that backtracks spends it on
            # this thread's CPU; a loaded machine (other threads holding the GIL, the process
            # descheduled) spends it waiting. Only the first is the pattern's fault: starved,
            # the match gets one more try under a longer wall bound, still finite, instead of
            # failing an ordinary text closed because the machine was busy.
            if time.thread_time() - cpu < limit / 2:
                try:
                    return list(self._regex.finditer(norm, timeout=limit * STARVED_RETRY))
                except TimeoutError:
                    pass
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
