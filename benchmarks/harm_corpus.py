"""Embed every chunk of the harm training/evaluation corpus once (issue 11's tiered model).

    .venv/bin/python benchmarks/harm_corpus.py        # ~60-90 min on 2 cores, cached in /tmp
    .venv/bin/python benchmarks/harm_corpus.py --splits test   # only what eval_harm's test
                                                               # numbers read (~15 min)

The cache is written every ``--checkpoint`` seconds and at the end; a run that is stopped
resumes where its last checkpoint left off (chunk features and token sums are saved together,
so they always describe the same chunks). Splits are embedded in the order given.

For every row of every source (labelled harm data, the newer labelled sources and the ordinary
text of ``guardrail.harm.ordinary``), its first three 400-character chunks are run through
multilingual-e5-small once, keeping:

* per chunk, the mean-pooled hidden states of layers ``CHUNK_LAYERS`` (each L2-normalised),
  so that the stage-2 heads can be fitted on any layer set (a truncated encoder) without
  re-embedding;
* per token id, the sum and count of its hidden states in layers ``TOKEN_LAYERS`` over the
  chunks of the **training split only**: the contextual static vectors of the first stage
  (each token's average vector in context).

Rows and splits come from :func:`corpus_rows`; the data is read by path, never copied.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrail.harm.chunking import chunks  # noqa: E402
from guardrail.harm.datasets import Row, data_root, load_all  # noqa: E402
from guardrail.harm.ordinary import LABELLED_NEW, ORDINARY, split_of  # noqa: E402

CHUNK_LAYERS = (4, 6, 8, 12)
TOKEN_LAYERS = (6, 8, 12)
MAX_CHUNKS = 3
CACHE = Path(os.environ.get("GUARDRAIL_HARM_EMB_DIR", "/tmp")) / "guardrail_harm_corpus"


@dataclass(frozen=True)
class CRow:
    row: Row
    split: str
    chunks: tuple[str, ...]


def row_split(r: Row) -> str:
    return split_of(f"{r.source}:{r.group or r.text}")


def corpus_rows(seed: int = 0) -> list[CRow]:
    root = data_root()
    rows = list(load_all(seed=seed, root=root))
    for name, fn in {**LABELLED_NEW, **ORDINARY}.items():
        rows += [r for r in fn(root, random.Random(f"{seed}-{name}")) if r.text]
    out = []
    for r in rows:
        cs = tuple(chunks(r.text)[:MAX_CHUNKS]) or (r.text[:400],)
        out.append(CRow(r, row_split(r), cs))
    return out


def key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def _save(feats_path: Path, tok_path: Path, done: dict[str, np.ndarray],
          tsum: dict[int, Any], tcount: Any) -> None:
    """Both files, each written to a temporary name first and then renamed. The token sums
    record how many chunks they cover (``n_chunks``); a run killed between the two renames
    leaves files that disagree, and the next run starts over rather than count twice."""
    tmp_f, tmp_t = feats_path.with_suffix(".tmp.npz"), tok_path.with_suffix(".tmp.npz")
    np.savez(tmp_f, keys=np.array(list(done)), vecs=np.stack(list(done.values())))
    np.savez(tmp_t, count=tcount.numpy(), n_chunks=np.array(len(done)),
             **{f"sum{k}": tsum[k].numpy().astype(np.float32) for k in TOKEN_LAYERS})
    tmp_t.replace(tok_path)
    tmp_f.replace(feats_path)


def embed_corpus(crows: list[CRow], batch_tokens: int = 6144,
                 splits: tuple[str, ...] = ("test", "val", "train"),
                 checkpoint_s: float = 300.0) -> None:
    import torch

    from guardrail.harm.e5 import E5Torch

    CACHE.mkdir(parents=True, exist_ok=True)
    feats_path = CACHE / "chunks.npz"
    done: dict[str, np.ndarray] = {}
    if feats_path.exists():
        z = np.load(feats_path)
        done = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
    train_texts = {c for cr in crows if cr.split == "train" for c in cr.chunks}
    tok_path = CACHE / "tokens.npz"
    model = E5Torch(precision="auto")
    V, H = model.header.VOC, model.header.H
    tsum = {L: torch.zeros(V, H) for L in TOKEN_LAYERS}
    tcount = torch.zeros(V, dtype=torch.float64)
    if tok_path.exists():
        z = np.load(tok_path)
        if "n_chunks" in z and int(z["n_chunks"]) == len(done):
            tsum = {L: torch.from_numpy(z[f"sum{L}"].astype(np.float32)) for L in TOKEN_LAYERS}
            tcount = torch.from_numpy(z["count"].astype(np.float64))
        else:
            done = {}
    else:
        done = {}
    if not done and feats_path.exists():
        print("cache files disagree (a save was interrupted): starting over", file=sys.stderr)
    todo: list[str] = []
    for sp in splits:
        seen = set(todo)
        todo += sorted({c for cr in crows if cr.split == sp for c in cr.chunks
                        if key(c) not in done and c not in seen}, key=len)
    print(f"{len(todo)} chunks to embed ({len(done)} cached)", file=sys.stderr, flush=True)
    t0, i = time.time(), 0
    last_save = t0
    tk = model.tokenizer
    while i < len(todo):
        ids_list, texts = [], []
        longest = 0
        while i < len(todo):
            ids = tk.content_ids(["passage: " + todo[i]])[0][:510]
            longest = max(longest, len(ids) + 2)
            if texts and longest * (len(texts) + 1) > batch_tokens:
                break
            ids_list.append(ids)
            texts.append(todo[i])
            i += 1
        L = max(len(x) for x in ids_list) + 2
        tok = np.full((len(texts), L), tk.eos, dtype=np.int64)
        mask = np.zeros((len(texts), L), dtype=np.int64)
        for r, ids in enumerate(ids_list):
            row = [tk.bos, *ids, tk.eos]
            tok[r, :len(row)] = row
            mask[r, :len(row)] = 1
        emb = model._rows(tok.reshape(-1)).reshape(len(texts), L, H)
        with torch.inference_mode():
            out = model.model(inputs_embeds=torch.from_numpy(emb).to(model.dtype),
                              attention_mask=torch.from_numpy(mask), output_hidden_states=True)
            m = torch.from_numpy(mask).unsqueeze(-1).float()
            states = {k: out.hidden_states[k].float()
                      for k in set(CHUNK_LAYERS) | set(TOKEN_LAYERS)}
            means = []
            for k in CHUNK_LAYERS:
                v = (states[k] * m).sum(1) / m.sum(1)
                means.append(v / v.norm(dim=1, keepdim=True).clamp_min(1e-6))
            vec = torch.cat(means, 1).numpy().astype(np.float16)
            for r, t in enumerate(texts):
                done[key(t)] = vec[r]
            # token sums over content tokens (not <s>, </s>, padding, "passage:" prefix)
            sel = torch.zeros_like(torch.from_numpy(mask), dtype=torch.bool)
            for r, t in enumerate(texts):
                if t in train_texts:
                    sel[r, 3:len(ids_list[r]) + 1] = True  # skip <s> and the "passage:" pieces
            if sel.any():
                flat_ids = torch.from_numpy(tok)[sel]
                for k in TOKEN_LAYERS:
                    tsum[k].index_add_(0, flat_ids, states[k][sel])
                tcount.index_add_(0, flat_ids, torch.ones(len(flat_ids), dtype=torch.float64))
        if (i // 64) % 20 == 0 or i >= len(todo):
            print(f"embedded {i}/{len(todo)} in {time.time() - t0:.0f}s", file=sys.stderr,
                  flush=True)
        if time.time() - last_save > checkpoint_s and i < len(todo):
            _save(feats_path, tok_path, done, tsum, tcount)
            last_save = time.time()
            print(f"checkpoint: {len(done)} chunks", file=sys.stderr, flush=True)
    _save(feats_path, tok_path, done, tsum, tcount)
    print("wrote", feats_path, tok_path, file=sys.stderr)


class CachedEncoder:
    """Serves chunk features from the corpus cache; embeds misses (zoomed sentences) live and
    keeps them in ``live_l<layers>.npz`` beside the corpus cache (``save()``)."""

    def __init__(self, corpus: Any) -> None:
        self.corpus = corpus
        self._live: Any = None
        self.misses = 0
        self.name = "corpus cache + live encoder"
        self.tokenizer = corpus.tokenizer
        self.extra: dict[tuple[int, ...], dict[str, np.ndarray]] = {}

    def _extra(self, layers: tuple[int, ...]) -> dict[str, np.ndarray]:
        if layers not in self.extra:
            p = CACHE / f"live_l{'-'.join(map(str, layers))}.npz"
            d: dict[str, np.ndarray] = {}
            if p.exists():
                z = np.load(p)
                d = dict(zip(z["keys"].tolist(), z["vecs"], strict=True))
            self.extra[layers] = d
        return self.extra[layers]

    def save(self) -> None:
        for layers, d in self.extra.items():
            if d:
                p = CACHE / f"live_l{'-'.join(map(str, layers))}.npz"
                np.savez(p, keys=np.array(list(d)), vecs=np.stack(list(d.values())))

    def passage(self, texts: list[str], layers: tuple[int, ...] = (12,)) -> np.ndarray:
        layers = tuple(layers)
        cols = self.corpus.layer_cols(layers)
        extra = self._extra(layers)
        out = np.zeros((len(texts), len(cols)), np.float32)
        todo = []
        for i, t in enumerate(texts):
            k = key(t)
            v = self.corpus.feats.get(k)
            if v is not None:
                out[i] = v[cols]
            elif k in extra:
                out[i] = extra[k]
            else:
                todo.append(i)
        if todo:
            if self._live is None:
                from guardrail.harm.e5 import E5Torch

                self._live = E5Torch(precision="auto", depth=max(layers))
            self.misses += len(todo)
            vecs = self._live.passage([texts[i] for i in todo], layers=layers)
            for i, v in zip(todo, vecs, strict=True):
                out[i] = v
                extra[key(texts[i])] = v
        return out


def load_chunk_features() -> dict[str, np.ndarray]:
    z = np.load(CACHE / "chunks.npz")
    return dict(zip(z["keys"].tolist(), z["vecs"], strict=True))


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", default="test,val,train",
                    help="which splits to embed, in this order (default: all)")
    ap.add_argument("--checkpoint", type=float, default=300.0,
                    help="seconds between saves of the cache")
    args = ap.parse_args()
    crows = corpus_rows()
    from collections import Counter

    print(Counter((c.row.source, c.split) for c in crows).most_common(200), file=sys.stderr)
    print(sum(len(c.chunks) for c in crows), "chunks", file=sys.stderr)
    embed_corpus(crows, splits=tuple(args.splits.split(",")), checkpoint_s=args.checkpoint)
