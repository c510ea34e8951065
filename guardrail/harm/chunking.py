"""Split long outputs into model-sized chunks at sentence boundaries.

Each chunk keeps its character span in the original text, so a finding can point at the
sentence(s) that scored. Sentences longer than ``max_chars`` are cut at whitespace (or hard,
for text without spaces such as Japanese).
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"'”』」)]*\s*|\n+")


def sentences(text: str) -> list[tuple[int, int]]:
    """Half-open spans of sentences (trailing whitespace included)."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.end() > pos:
            spans.append((pos, m.end()))
            pos = m.end()
    if pos < len(text):
        spans.append((pos, len(text)))
    return spans


def _cut(start: int, end: int, text: str, max_chars: int) -> list[tuple[int, int]]:
    out = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = cut + 1 if cut > start else start + max_chars
        out.append((start, cut))
        start = cut
    out.append((start, end))
    return out


def chunk_spans(text: str, max_chars: int = 400) -> list[tuple[int, int]]:
    """Greedily pack whole sentences into chunks of at most ``max_chars`` characters."""
    chunks: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for s, e in sentences(text):
        for ps, pe in _cut(s, e, text, max_chars):
            if cur is not None and pe - cur[0] <= max_chars:
                cur = (cur[0], pe)
            else:
                if cur is not None:
                    chunks.append(cur)
                cur = (ps, pe)
    if cur is not None:
        chunks.append(cur)
    return [(s, e) for s, e in chunks if text[s:e].strip()]


def chunks(text: str, max_chars: int = 400) -> list[str]:
    return [text[s:e].strip() for s, e in chunk_spans(text, max_chars)]
