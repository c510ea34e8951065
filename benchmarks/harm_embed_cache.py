"""Chunk-embedding cache for the harm training/eval scripts (kept under /tmp, not the repo).

Embedding ~13k chunks on 2 cores takes a few minutes; the cache makes reruns fast. The encoder
is :class:`guardrail.harm.e5.E5Torch` in fp32 (the scanner runs it in bf16 where the CPU has it;
the two agree to cosine 0.99995). One cache file per layer set.
Keys are the sha1 of the chunk text; the file is an .npz of keys and float32 vectors.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from guardrail.harm.embedded import ENCODER_LAYERS  # noqa: E402

CACHE_DIR = Path(os.environ.get("GUARDRAIL_HARM_EMB_DIR", "/tmp"))


def cache_path(layers: tuple[int, ...]) -> Path:
    return CACHE_DIR / f"guardrail_harm_emb_l{'-'.join(map(str, layers))}.npz"


def key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


class EmbedCache:
    """Encoder features of chunks: the mean-pooled hidden states of ``layers`` (default: the
    layers the shipped heads read, ``ENCODER_LAYERS``), each L2-normalised, concatenated."""

    def __init__(self, layers: tuple[int, ...] = ENCODER_LAYERS) -> None:
        self.layers = tuple(layers)
        self.path = path = cache_path(self.layers)
        self.vecs: dict[str, np.ndarray] = {}
        if path.exists():
            z = np.load(path)
            self.vecs = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
        self._model: Any = None
        self.dirty = False

    def save(self) -> None:
        keys = np.array(list(self.vecs))
        vecs = (np.stack(list(self.vecs.values())) if self.vecs
                else np.zeros((0, 384 * len(self.layers))))
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=keys, vecs=vecs.astype(np.float32))
        os.replace(tmp, self.path)

    def embed(self, texts: list[str], batch: int = 512, save: bool = True) -> np.ndarray:
        todo = sorted({t for t in texts if key(t) not in self.vecs}, key=len)
        if todo:
            if self._model is None:
                from guardrail.harm.e5 import E5Torch

                self._model = E5Torch(precision="fp32")
            t0, done = time.time(), 0
            for i in range(0, len(todo), batch):
                part = todo[i : i + batch]
                vecs = self._model.passage(part, layers=self.layers)
                for t, v in zip(part, vecs, strict=True):
                    self.vecs[key(t)] = v
                done += len(part)
                if save and (i // batch) % 4 == 0:
                    print(f"embedded {done}/{len(todo)} in {time.time() - t0:.0f}s",
                          file=sys.stderr, flush=True)
                    self.save()
            self.dirty = True
            if save:
                self.save()
        dim = 384 * len(self.layers)
        return np.stack([self.vecs[key(t)] for t in texts]) if texts else np.zeros((0, dim))


class CachedEncoder:
    """Stands in for the encoder in evaluation: ``passage()`` served from the cache."""

    def __init__(self, cache: EmbedCache) -> None:
        self.cache = cache

    def passage(self, texts: list[str], layers: tuple[int, ...] = ()) -> np.ndarray:
        if layers and tuple(layers) != self.cache.layers:
            raise ValueError(f"cache holds layers {self.cache.layers}, asked for {layers}")
        return self.cache.embed(list(texts), save=False)
