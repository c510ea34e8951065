"""Candidate retrieval + verification: from an output text to the works it copies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from guardrail.corpus.align import AlignRules, Passage, align
from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.text import Tokens, tokenize

EXCERPT_CHARS = 240


@dataclass(frozen=True)
class DetectRules:
    """What counts as a copied passage (before the policy's similarity threshold)."""

    min_passage_words: int = 20  # space-delimited words ...
    min_passage_cjk_chars: int = 40  # ... or CJK characters (mixed: fractions add up)
    min_similarity: float = 0.3  # passages below this are not reported at all
    max_works: int = 5  # candidate works verified per output (most LSH collisions first)
    region_pad_chars: int = 200
    align: AlignRules = field(default_factory=AlignRules)

    def long_enough(self, p: Passage) -> bool:
        return p.words / self.min_passage_words + p.cjk_chars / self.min_passage_cjk_chars >= 1


@dataclass(frozen=True, slots=True)
class MatchedPassage:
    passage: Passage
    work_excerpt: str


@dataclass(frozen=True)
class WorkMatch:
    """A registered work that the output copies, with the evidence."""

    work_id: int
    passages: tuple[MatchedPassage, ...]  # qualifying passages, longest first
    coverage: float  # share of the output (in word units) inside these passages
    similarity: float  # best similarity among qualifying passages

    @property
    def longest(self) -> Passage:
        return self.passages[0].passage


def _coverage(tokens: Tokens, passages: list[Passage]) -> float:
    if len(tokens) == 0:
        return 0.0
    mask = np.zeros(len(tokens), dtype=bool)
    for p in passages:
        mask[p.out_tokens[0] : p.out_tokens[1]] = True
    units = tokens.units
    return float(units[mask].sum() / units.sum())


def detect(index: CorpusIndex, text: str, rules: DetectRules | None = None) -> list[WorkMatch]:
    """Works that ``text`` copies at least one long-enough passage of, best first."""
    r = rules or DetectRules()
    tokens = tokenize(text)
    if len(tokens) < r.align.shingle:
        return []
    by_work: dict[int, list[MatchedPassage]] = {}
    for cand in index.candidates(tokens, max_works=r.max_works):
        region, start = cand.text(pad=r.region_pad_chars)
        wt = tokenize(region, offset=start)
        for p in align(tokens, wt, r.align):
            if p.similarity < r.min_similarity or not r.long_enough(p):
                continue
            excerpt = cand.segment.work_text(
                cand.work_index, p.work_start, min(p.work_end, p.work_start + EXCERPT_CHARS)
            )
            by_work.setdefault(cand.work_id, []).append(MatchedPassage(p, excerpt))
    out = []
    for work_id, mps in by_work.items():
        mps.sort(key=lambda m: -m.passage.word_equivalents)
        ps = [m.passage for m in mps]
        out.append(
            WorkMatch(
                work_id=work_id,
                passages=tuple(mps),
                coverage=round(_coverage(tokens, ps), 4),
                similarity=max(p.similarity for p in ps),
            )
        )
    out.sort(key=lambda m: (-m.longest.word_equivalents, -m.similarity))
    return out
