"""Exact verification: align the output with a candidate region of a work.

LSH only says "these windows look alike". Here the output's token shingles are matched
exactly against the work region's (anchors), and anchors are chained along a diagonal that
may drift a little (insertions/deletions) and skip short gaps (substitutions). Each chain is
a *passage*: a span of the output, the span of the work it copies, how long it is and how
much of it matches exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrail.corpus.text import Tokens, shingle_hashes


@dataclass(frozen=True)
class AlignRules:
    shingle: int = 3
    max_gap_units: int = 16  # between consecutive anchors: 8 words or 16 CJK characters
    max_drift: int = 6  # change of diagonal (net insertions/deletions) between anchors
    max_repeats: int = 16  # work positions considered per output shingle


@dataclass(frozen=True, slots=True)
class Passage:
    """One copied (possibly edited) passage. Offsets are characters in the original texts."""

    out_start: int
    out_end: int
    work_start: int
    work_end: int
    out_tokens: tuple[int, int]  # token range in the output [i0, i1)
    words: int  # space-delimited words in the output span
    cjk_chars: int  # CJK characters in the output span
    matched_tokens: int  # output tokens covered by exact anchors
    similarity: float  # matched / max(output span, work span) in tokens

    @property
    def word_equivalents(self) -> float:
        return self.words + self.cjk_chars / 2


def align(out: Tokens, work: Tokens, rules: AlignRules | None = None) -> list[Passage]:
    """Passages shared by ``out`` and ``work``, longest first."""
    r = rules or AlignRules()
    k = r.shingle
    if len(out) < k or len(work) < k:
        return []
    so = shingle_hashes(out, k)
    sw = shingle_hashes(work, k)
    order = np.argsort(sw, kind="stable")
    sorted_w = sw[order]
    lo = np.searchsorted(sorted_w, so, side="left")
    hi = np.searchsorted(sorted_w, so, side="right")
    hits = np.nonzero(hi > lo)[0]
    if hits.size == 0:
        return []
    # chains: [i0, i_last, j0, j_last, diag, anchors(list of i)]
    cum = np.cumsum(out.units)
    active: list[list[Any]] = []
    done: list[list[Any]] = []
    for i in hits.tolist():
        js = order[lo[i] : min(hi[i], lo[i] + r.max_repeats)].tolist()
        still: list[list[Any]] = []
        for ch in active:
            (done if cum[i] - cum[ch[1]] > r.max_gap_units else still).append(ch)
        active = still
        used: set[int] = set()
        for ch in active:
            best, best_dd = -1, r.max_drift + 1
            for j in js:
                if j <= ch[3] or j in used:
                    continue
                dd = abs((j - i) - ch[4])
                if dd < best_dd:
                    best, best_dd = j, dd
            if best >= 0:
                ch[1], ch[3], ch[4] = i, best, best - i
                ch[5].append(i)
                used.add(best)
        extended = {ch[1] for ch in active}
        if i not in extended:
            for j in js:
                if j not in used:
                    active.append([i, i, j, j, j - i, [i]])
                    break
    done.extend(active)
    passages = []
    cover = np.zeros(len(out), dtype=bool)
    for i0, i1, j0, j1, _, anchors in done:
        if len(anchors) < 2:
            continue
        cover[:] = False
        for a in anchors:
            cover[a : a + k] = True
        oe, we = i1 + k, j1 + k
        matched = int(cover[i0:oe].sum())
        words, cjk = out.span_units(i0, oe)
        if cjk:  # CJK length counts every character of the span (punctuation included)
            wt = ~out.cjk[i0:oe]
            word_chars = int((out.ends[i0:oe][wt] - out.starts[i0:oe][wt]).sum()) + words
            span_chars = int(out.ends[oe - 1] - out.starts[i0])
            cjk = max(cjk, span_chars - word_chars)
        sim = matched / max(oe - i0, we - j0)
        passages.append(
            Passage(
                out_start=int(out.starts[i0]),
                out_end=int(out.ends[oe - 1]),
                work_start=int(work.starts[j0]),
                work_end=int(work.ends[we - 1]),
                out_tokens=(i0, oe),
                words=words,
                cjk_chars=cjk,
                matched_tokens=matched,
                similarity=round(float(sim), 4),
            )
        )
    passages.sort(key=lambda p: -p.word_equivalents)
    return passages
