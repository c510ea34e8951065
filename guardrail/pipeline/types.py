"""Value types shared by scanners, the pipeline runner and the proxy.

Everything a scanner returns is a frozen dataclass (never a bare tuple), so that
evidence travels intact from the scanner to the incident record.
"""

from __future__ import annotations

import asyncio
import enum
import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Action(enum.StrEnum):
    """What the policy does about a finding. Ordered by strength."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    HOLD = "hold"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def strongest(cls, actions: list[Action] | tuple[Action, ...]) -> Action:
        return max(actions, key=lambda a: a.rank, default=cls.ALLOW)


_RANK = {Action.ALLOW: 0, Action.FLAG: 1, Action.REDACT: 2, Action.HOLD: 3, Action.BLOCK: 4}


class Stage(enum.StrEnum):
    """Where in a request the text was scanned."""

    OUTPUT = "output"
    STREAM_WINDOW = "stream_window"
    TOOL_ARGUMENTS = "tool_arguments"
    IMAGE = "image"


@dataclass(frozen=True, slots=True)
class ScannerInfo:
    """What actually runs behind a scanner: shown at /readyz and on every incident."""

    name: str
    backend: str
    model: str | None = None
    model_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    degraded: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model": self.model,
            "model_version": self.model_version,
            "details": self.details,
            "degraded": self.degraded,
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a scanner saw. ``span`` is a half-open character range in ``ScanContext.text``."""

    scanner: str
    kind: str
    category: str
    score: float
    span: tuple[int, int] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    replacement: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "kind": self.kind,
            "category": self.category,
            "score": round(float(self.score), 6),
            "span": list(self.span) if self.span else None,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class ScanResult:
    scanner: str
    info: ScannerInfo
    findings: tuple[Finding, ...] = ()
    elapsed_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Request facts that scanners may use and incidents record."""

    request_id: str
    route: str
    policy_name: str
    policy_version: str
    system_id: str
    api_key_id: str | None = None
    tenant: str | None = None
    upstream_model: str | None = None  # the model the client asked for (the request's model)
    answered_model: str | None = None  # the model that answered (the response's model)
    response_id: str | None = None  # where a held copy of this response is kept (hr_...)


def normalise(text: str) -> str:
    """NFKC + casefold: full-width forms and case variants compare equal.

    NFKC can change string length (e.g. ligatures); callers that need spans in the
    original text use :func:`normalise_with_map`.
    """
    return unicodedata.normalize("NFKC", text).casefold()


def normalise_with_map(text: str) -> tuple[str, Sequence[int]]:
    """Normalise segment by segment (a base character plus any combining marks, including
    half-width kana voicing marks), returning the text and, for each output char, the index
    of the source char it came from (so spans map back to the original). ASCII runs take a
    bulk fast path; pure-ASCII text maps by identity."""
    if text.isascii():
        return text.lower(), range(len(text))
    out: list[str] = []
    index: list[int] = []
    for run in _RUNS.finditer(text):
        i, n = run.start(), run.end()
        if text[i].isascii():
            out.append(run.group().lower())
            index.extend(range(i, n))
            continue
        while i < n:
            j = i + 1
            while j < n and (unicodedata.combining(text[j]) or text[j] in _VOICING):
                j += 1
            norm = unicodedata.normalize("NFKC", text[i:j]).casefold()
            out.append(norm)
            index.extend([i] * len(norm))
            i = j
    return "".join(out), index


_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")
_VOICING = frozenset("\uff9e\uff9f\u3099\u309a")
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
_LETTER = re.compile(r"[^\W\d_]")


def detect_language(text: str) -> str:
    """Cheap script-based guess: ``ja`` when kana/kanji make up a noticeable share, else ``en``."""
    sample = text[:2000]
    letters = len(_LETTER.findall(sample))
    return "ja" if letters and len(_CJK.findall(sample)) / letters >= 0.2 else "en"


@dataclass(slots=True)
class ScanContext:
    """The text under scan plus shared, lazily computed per-request artefacts.

    Scanners that need the same expensive thing (an embedding, a tokenisation) ask for it
    through :meth:`shared`, so it is computed once per context however many scanners run.
    """

    text: str
    meta: RequestMeta
    stage: Stage = Stage.OUTPUT
    _language: str = ""
    _artefacts: dict[str, asyncio.Future[Any]] = field(default_factory=dict, repr=False)
    _normalised: tuple[str, Sequence[int]] | None = field(default=None, repr=False)

    @property
    def language(self) -> str:
        """``ja`` or ``en``, guessed from the script on first use."""
        if not self._language:
            self._language = detect_language(self.text)
        return self._language

    @property
    def normalised(self) -> tuple[str, Sequence[int]]:
        if self._normalised is None:
            self._normalised = normalise_with_map(self.text)
        return self._normalised

    async def shared(self, key: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        fut = self._artefacts.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._artefacts[key] = fut
            try:
                fut.set_result(await factory())
            except BaseException as exc:  # noqa: BLE001 - propagated to every waiter
                fut.set_exception(exc)
                del self._artefacts[key]
                raise
        return await asyncio.shield(fut)


@dataclass(frozen=True, slots=True)
class RuledFinding:
    """A finding after the policy's rule for its category was applied."""

    finding: Finding
    action: Action
    threshold: float


@dataclass(frozen=True, slots=True)
class ScannerFailure:
    scanner: str
    info: ScannerInfo
    reason: str  # "timeout" | "error"
    message: str
    fail_mode: str  # "fail_open" | "fail_closed"
    action: Action
    elapsed_ms: float = 0.0  # from the scan's start to its failure


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy applied to everything the scanners returned for one text."""

    action: Action
    findings: tuple[RuledFinding, ...] = ()
    failures: tuple[ScannerFailure, ...] = ()
    results: tuple[ScanResult, ...] = ()

    @property
    def redactions(self) -> list[tuple[int, int, str]]:
        out = []
        for rf in self.findings:
            f = rf.finding
            if rf.action is Action.REDACT and f.span is not None:
                out.append((f.span[0], f.span[1], f.replacement or f"<{f.category.upper()}>"))
        return out

    @property
    def acting_findings(self) -> tuple[RuledFinding, ...]:
        return tuple(rf for rf in self.findings if rf.action is not Action.ALLOW)

    @property
    def scanner_ms(self) -> dict[str, float]:
        """Milliseconds each scanner took on this text (a failed one: until it failed)."""
        out = {r.scanner: r.elapsed_ms for r in self.results}
        out.update({f.scanner: f.elapsed_ms for f in self.failures})
        return out


def apply_redactions(text: str, spans: list[tuple[int, int, str]]) -> str:
    """Replace each span with its replacement; overlapping spans are merged (first wins)."""
    if not spans:
        return text
    merged: list[list[Any]] = []
    for start, end, rep in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, rep])
    parts: list[str] = []
    pos = 0
    for start, end, rep in merged:
        parts.append(text[pos:start])
        parts.append(rep)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)
