"""The one evidence builder: what an incident stores of the text it concerns.

Every excerpt, top-level or nested in a finding's evidence, is cut from the *redacted* text
(the decision's redactions applied, and every personal span masked) by span, mapping the
scanners' offsets in the original text through the redaction offsets. A scanner that quotes
the text it scanned marks the quote as ``{"output": {"start", "end", "excerpt"}}`` (the IP
scanner's passages); the builder re-cuts those from the redacted text. As a last guard every
other string in the evidence has any masked value replaced too (a registered work's own
excerpt may hold the same address the output copied), so no redacted value is ever stored.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from guardrail.pipeline.types import Action, Decision, RuledFinding

REDACTED = "<redacted>"


@dataclass(frozen=True)
class RedactedText:
    """``text`` with ``masks`` applied (overlaps merged, first replacement wins), and the map
    from offsets in the original to offsets in the redacted text."""

    original: str
    text: str
    spans: tuple[tuple[int, int, int, int], ...]  # (orig start, orig end, red start, red end)
    raw_values: tuple[tuple[str, str], ...]  # (masked raw value, its replacement)

    @classmethod
    def build(cls, text: str, masks: list[tuple[int, int, str]]) -> RedactedText:
        merged: list[list[Any]] = []
        for s, e, rep in sorted(masks, key=lambda m: (m[0], -m[1])):
            s, e = max(0, min(s, len(text))), max(0, min(e, len(text)))
            if e <= s:
                continue
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
                continue
            merged.append([s, e, rep])
        parts: list[str] = []
        spans: list[tuple[int, int, int, int]] = []
        pos = red = 0
        for s, e, rep in merged:
            parts.append(text[pos:s])
            red += s - pos
            parts.append(rep)
            spans.append((s, e, red, red + len(rep)))
            red += len(rep)
            pos = e
        parts.append(text[pos:])
        raws = tuple((text[s:e], rep) for s, e, rep in merged if text[s:e].strip())
        return cls(text, "".join(parts), tuple(spans), raws)

    def map(self, pos: int, *, end: bool = False) -> int:
        """``pos`` (an offset in the original) in the redacted text; inside a masked span it
        maps to the replacement's start (``end=False``) or its end (``end=True``)."""
        pos = max(0, min(pos, len(self.original)))
        i = bisect_right([sp[0] for sp in self.spans], pos) - 1
        if i < 0:
            return pos
        s, e, rs, re_ = self.spans[i]
        if pos >= e:
            return re_ + (pos - e)
        if pos == s:
            return rs
        return re_ if end else rs

    def cut(self, start: int, end: int) -> str:
        """The redacted text of the original span ``[start, end)``; a masked value the span
        touches appears as its whole replacement, never in part."""
        return self.text[self.map(start):self.map(end, end=True)]

    def scrub(self, value: str) -> str:
        """``value`` with every masked raw value in it replaced (longest first)."""
        for raw, rep in sorted(self.raw_values, key=lambda r: -len(r[0])):
            if raw in value:
                value = value.replace(raw, rep)
        return value


def masks_of(decision: Decision) -> list[tuple[int, int, str]]:
    """Everything the record must not hold in clear: the decision's redactions, and every
    personal or replaceable span any scanner found (whatever its action)."""
    masks = [(f.span[0], f.span[1], f"<{f.category.upper()}>")
             for r in decision.results for f in r.findings
             if f.span is not None and (f.kind == "pii" or f.replacement is not None)]
    masks += [(s, e, rep) for s, e, rep in decision.redactions]
    for rf in decision.findings:  # redacted findings from wherever they came
        f = rf.finding
        if f.span is not None and (rf.action is Action.REDACT or f.kind == "pii"):
            masks.append((f.span[0], f.span[1], f.replacement or f"<{f.category.upper()}>"))
    return masks


class EvidenceBuilder:
    """Cuts an incident's excerpt and finding evidence from one redacted view of ``text``."""

    def __init__(self, text: str, decision: Decision) -> None:
        self.decision = decision
        self.view = RedactedText.build(text, masks_of(decision))

    def excerpt(self, limit: int) -> str | None:
        """About ``limit`` characters of the redacted text around the first acting finding."""
        if limit <= 0:
            return None
        acting = self.decision.acting_findings
        span = acting[0].finding.span if acting else None
        centre = self.view.map(span[0]) if span else 0
        red = self.view.text
        lo = max(0, min(centre - limit // 2, len(red) - limit))
        return red[lo:lo + limit]

    def finding(self, r: RuledFinding) -> dict[str, Any]:
        """The finding as recorded: text-located quotes re-cut from the redacted text, every
        other string scrubbed of masked values, a masked span's own value ``<redacted>``."""
        d = {**r.finding.as_dict(), "action": r.action.value, "threshold": r.threshold}
        f = r.finding
        raw = None
        if f.span is not None and (r.action is Action.REDACT or f.kind == "pii"):
            raw = self.view.original[f.span[0]:f.span[1]].casefold()
        d["evidence"] = self._walk(f.evidence, raw, None)
        return d

    def _walk(self, value: Any, raw: str | None, key: str | None) -> Any:
        if isinstance(value, dict):
            if key == "output" and _is_quote(value):
                start, end, quote = value["start"], value["end"], value.get("excerpt")
                stop = start + len(quote) if isinstance(quote, str) else end
                return {**{k: self._walk(v, raw, k) for k, v in value.items()},
                        "excerpt": self.view.cut(start, min(end, stop))}
            return {k: self._walk(v, raw, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, raw, None) for v in value]
        if isinstance(value, str):
            if raw and value.casefold() == raw:
                return REDACTED
            return self.view.scrub(value)
        return value


def _is_quote(d: dict[str, Any]) -> bool:
    s, e = d.get("start"), d.get("end")
    return (isinstance(s, int) and isinstance(e, int) and not isinstance(s, bool)
            and not isinstance(e, bool) and "excerpt" in d)
