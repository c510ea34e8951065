"""IP scanner: near-duplicates of works registered in third-party corpora.

Output windows are MinHashed and looked up in the shared corpus index (LSH over registered
windows); candidate regions are then aligned exactly with the output. A finding is one work
the output copies a passage of at least ``min_passage_words`` words (or
``min_passage_cjk_chars`` Japanese/Chinese characters) from; its score is the passage's
similarity (exactly matched share), compared by the runner with ``threshold``. The category
is the corpus name, so a policy may set per-corpus thresholds and actions under
``categories``. Evidence carries what an IP reviewer needs side by side.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import Action, Finding, ScanContext, ScannerInfo, ScanResult
from guardrail.pipeline.workers import WorkerPool, pool_size

if TYPE_CHECKING:
    from guardrail.corpus.detect import DetectRules, WorkMatch
    from guardrail.corpus.registry import CorpusRegistry
    from guardrail.runtime import Runtime

EXCERPT = 240


class IPConfig(ScannerConfig):
    type: Literal["ip"] = "ip"
    action: Action = Field(Action.HOLD, description="Default: hold for IP review.")
    threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum similarity of the copied passage."
    )
    min_passage_words: int = Field(20, ge=5, description="Shortest copied passage (words).")
    min_passage_cjk_chars: int = Field(
        40, ge=10, description="Shortest copied passage in Japanese/Chinese characters."
    )
    min_coverage: float = Field(
        0.0, ge=0.0, le=1.0, description="Also require this share of the output to be copied."
    )
    corpora: list[str] = Field(
        default_factory=list, description="Only these corpora (empty: every registered one)."
    )
    max_findings: int = Field(3, ge=1, le=20, description="Works reported per output.")
    max_passages: int = Field(3, ge=1, le=20, description="Passages in evidence per work.")
    workers: int | None = Field(
        None, ge=1, le=64, description="Threads of this scanner's own pool (default: "
        "GUARDRAIL_SCANNER_WORKERS). A timed-out scan keeps its thread until it ends.")


class IPScanner:
    config_class: ClassVar[type[ScannerConfig]] = IPConfig

    def __init__(self, config: IPConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.name = config.instance_name
        self.runtime = runtime
        self._registry: CorpusRegistry | None = None
        self._rules: DetectRules | None = None
        self.workers = WorkerPool(self.name, pool_size(config.workers, runtime))

    async def aclose(self) -> None:
        await self.workers.aclose()

    def load(self) -> None:
        from guardrail.corpus.detect import DetectRules
        from guardrail.corpus.service import get_registry
        from guardrail.errors import ScannerLoadError

        if self.runtime is None:
            raise ScannerLoadError(self.name, "minhash-lsh", None, "needs the process runtime")
        try:
            self._registry = get_registry(self.runtime)
            self._registry.start_sync()  # index works stored but not yet indexed (background)
        except Exception as exc:  # noqa: BLE001 - reported as a load failure
            raise ScannerLoadError(self.name, "minhash-lsh", None, str(exc)) from exc
        self._rules = DetectRules(
            min_passage_words=self.config.min_passage_words,
            min_passage_cjk_chars=self.config.min_passage_cjk_chars,
        )

    def info(self) -> ScannerInfo:
        details: dict[str, Any] = {}
        version = None
        if self._registry is not None:
            st = self._registry.index.stats()
            details = {k: st[k] for k in ("windows", "works", "segments", "load_seconds")}
            p = self._registry.index.params
            version = (f"w{p.window_units}s{p.stride_units}q{p.query_stride_units}"
                       f"-k{p.shingle}-b{p.bands}r{p.rows}-p{p.num_perm}")
        return ScannerInfo(
            name=self.name, backend="minhash-lsh", model="datasketch-affine32",
            model_version=version, details=details,
        )

    @property
    def holdback_chars(self) -> int:
        """A whole minimum-length passage must still be unreleased when it completes: the
        context a stream scan re-reads, and the most :meth:`safe_release` ever holds."""
        return max(self.config.min_passage_words * 12, self.config.min_passage_cjk_chars * 2) + 64

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """Release what cannot be part of a copied passage: with no work registered,
        everything; else all but the last partial shingle, and, while a run of shingles that
        occur in registered works could still grow into a passage, nothing from its first
        shingle on (at most :attr:`holdback_chars`). See
        :func:`guardrail.corpus.shingles.copy_release_bound`."""
        from guardrail.corpus.shingles import copy_release_bound

        if self._registry is None or self._rules is None:
            return scanned_upto - self.holdback_chars
        index = self._registry.index
        if index.snapshot.works == 0:
            return scanned_upto
        rules = self._rules.align
        if rules.shingle != index.params.shingle:  # stored shingles would not be alignment's
            return scanned_upto - self.holdback_chars
        return copy_release_bound(text, scanned_upto, index.registered_shingles, rules.shingle,
                                  rules.max_gap_units, self.holdback_chars)

    async def scan(self, ctx: ScanContext) -> ScanResult:
        start = time.perf_counter()
        findings = await self.workers.run(self._scan_sync, ctx.text)
        return ScanResult(
            scanner=self.name, info=self.info(), findings=tuple(findings),
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    def _scan_sync(self, text: str) -> list[Finding]:
        from guardrail.corpus.detect import detect

        assert self._registry is not None and self._rules is not None
        matches = detect(self._registry.index, text, self._rules)
        matches = [m for m in matches if m.coverage >= self.config.min_coverage]
        if not matches:
            return []
        meta = self._registry.work_meta([m.work_id for m in matches])
        out: list[Finding] = []
        for m in matches:
            info = meta.get(m.work_id)
            if info is None:  # deleted meanwhile
                continue
            if self.config.corpora and info["corpus"] not in self.config.corpora:
                continue
            out.append(self._finding(text, m, info))
            if len(out) >= self.config.max_findings:
                break
        return out

    def _finding(self, text: str, m: WorkMatch, info: dict[str, Any]) -> Finding:
        best = m.longest
        passages = []
        for mp in m.passages[: self.config.max_passages]:
            p = mp.passage
            passages.append({
                # a text-located quote: the incident's evidence builder re-cuts it from the
                # redacted text by span (guardrail/incidents/evidence.py), never stored raw
                "output": {"start": p.out_start, "end": p.out_end,
                           "excerpt": text[p.out_start : min(p.out_end, p.out_start + EXCERPT)]},
                "work": {"start": p.work_start, "end": p.work_end, "excerpt": mp.work_excerpt},
                "words": p.words, "cjk_chars": p.cjk_chars, "similarity": p.similarity,
            })
        evidence = {
            "corpus": info["corpus"], "work_id": m.work_id, "title": info["title"],
            "external_id": info["external_id"], "rights_holder": info["rights_holder"],
            "license": info["license"], "source_url": info["source_url"],
            "content_sha256": info["content_sha256"],
            "similarity": best.similarity, "coverage": m.coverage,
            "longest_passage": {"words": best.words, "cjk_chars": best.cjk_chars,
                                "chars": best.out_end - best.out_start},
            "passages": passages,
        }
        return Finding(
            scanner=self.name, kind="near_duplicate", category=info["corpus"],
            score=best.similarity, span=(best.out_start, best.out_end), evidence=evidence,
        )
