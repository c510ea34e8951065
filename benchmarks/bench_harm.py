"""Latency of the harm scanner per 2 KB output at concurrency 1 and 8: tiers vs the reference.

    .venv/bin/python benchmarks/bench_harm.py [--backend embedded] [--requests 64]

Two workloads, each request a distinct ~2 KB output drawn from the corpus' **test split**
(never trained on, so the static stage's settle rate is out of sample): ``benign`` = LLM
answers in English and Japanese, ``harmful`` = harmful LLM responses. Configurations, each a
fresh backend (an empty embedding cache):
``tiered`` = the shipped default (the static stage's distilled gate settles the chunks it
is sure of, the rest go to the truncated encoder, micro-batched); ``tiered_sentence_check`` =
the same with ``sentence_check: true`` (a settled chunk's doubtful sentence alone to the
encoder, as the earlier bag-of-tokens gate needed);
``reference_encoder_every_chunk`` = the same heads
with the cascade off (every chunk through the encoder: the baseline, in the same run);
``static_only`` = the policy's ``encoder: false``. ``settled_share`` = share of chunks the
static stage settled. Every configuration scores the same outputs (paired), and within one no
source text is reused until its pool is spent (``source_texts_reused``; 0 with the defaults);
``cache_hits`` counts the chunks and sentences the backend's embedding cache still answered
(identical openings, boilerplate sentences).
Writes benchmarks/results/harm_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrail.harm.e5 import bf16_native  # noqa: E402
from guardrail.pipeline.types import RequestMeta, ScanContext  # noqa: E402
from guardrail.scanners.harm import HarmConfig, HarmScanner  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "harm_bench.json"


BENIGN_SOURCES = ("xstest", "en_medquad", "ja_llm_answers", "ja_vicuna_answers", "aegis")


def outputs(n: int, mix: float, seed: int = 0) -> tuple[list[str], int]:
    """``n`` distinct ~2 KB outputs from the corpus' **test split** (never trained on):
    benign = LLM answers (XSTest safe completions, MedQuAD answers, Japanese LLM answers, Aegis
    safe responses), harmful = JailbreakBench jailbroken responses and DICES unsafe turns.
    No source text is used twice until its pool is spent; returns the outputs and how many
    source texts had to be reused."""
    from harm_corpus import corpus_rows

    rng = random.Random(seed)
    test = [c.row for c in corpus_rows() if c.split == "test"]
    pools = {
        False: sorted({r.text for r in test if not r.harmful and r.kind == "llm_output"
                       and r.source in BENIGN_SOURCES}),
        True: sorted({r.text for r in test if r.harmful and r.kind == "llm_output"}),
    }
    left: dict[bool, list[str]] = {False: [], True: []}
    reused = 0
    seen: set[str] = set()

    def draw(harmful: bool) -> str:
        nonlocal reused
        if not left[harmful]:
            left[harmful] = rng.sample(pools[harmful], len(pools[harmful]))
        t = left[harmful].pop()
        reused += t in seen
        seen.add(t)
        return t

    out = []
    for _ in range(n):
        harmful = rng.random() < mix
        parts, size = [], 0
        while size < 2048:
            t = draw(harmful)
            parts.append(t)
            size += len(t) + 1
        out.append("\n".join(parts)[:2048])
    return out, reused


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p * len(xs)))], 2)


async def run(scanner: HarmScanner, texts: list[str], conc: int) -> dict:
    meta = RequestMeta("b", "/v1/chat/completions", "bench", "v", "s")
    lat: list[float] = []
    it = iter(texts)

    async def worker() -> None:
        for t in it:
            t0 = time.perf_counter()
            await scanner.scan(ScanContext(text=t, meta=meta))
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    wall = time.perf_counter() - t0
    return {"p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "p99_ms": pct(lat, 0.99),
            "mean_ms": round(statistics.mean(lat), 2), "requests": len(lat),
            "throughput_rps": round(len(lat) / wall, 1)}


CONFIGS = [  # name, settings, workloads
    # the shipped default: tiers (the distilled gate settles what it can; the rest to the
    # truncated encoder, micro-batched; no sentence check, the gate reads token positions)
    ("tiered", {}, ("benign", "harmful")),
    # the same gate with the sentence check a bag-of-tokens gate needs: a settled chunk with a
    # doubtful sentence sends that sentence to the encoder (route_sentences, route_power 4)
    ("tiered_sentence_check", {"sentence_check": True}, ("benign",)),
    # the reference path in the same run: every chunk through the encoder
    ("reference_encoder_every_chunk", {"cascade": False}, ("benign", "harmful")),
    # `encoder: false`: the static stage alone, inline (no model thread, nothing to batch)
    ("static_only", {"encoder": False}, ("benign", "harmful")),
]


async def main_async(args: argparse.Namespace) -> dict:
    results: dict = {}
    configs = CONFIGS if args.backend == "embedded" else CONFIGS[:1]
    for name, kw, loads in configs:
        cfg = HarmConfig(type="harm", backend=args.backend, model=args.model, **kw)
        sc = HarmScanner(cfg, None)
        sc.load()
        await sc.scan(ScanContext(text="warm up. " * 10,
                                  meta=RequestMeta("w", "/", "b", "v", "s")))
        for load in loads:
            # harmful: a quarter as many (the pool of harmful test-split answers is ~100 KB)
            n = args.requests if load == "benign" else max(8, args.requests // 4)
            # the same texts for every configuration (paired; each has its own empty cache)
            texts, reused = outputs(2 * n, 0.0 if load == "benign" else 1.0,
                                    seed=int(load == "harmful"))
            for conc in (1, 8):
                stats = getattr(sc.backend, "stats", None)
                before = dict(stats) if stats else None
                part = texts[:n] if conc == 1 else texts[n:]
                r = await run(sc, part, conc)
                r["source_texts_reused"] = reused
                if stats and before:
                    ch = stats["chunks"] - before["chunks"]
                    r["chunks_per_output"] = round(ch / n, 2)
                    settled = stats["settled"] - before["settled"]
                    r["settled_share"] = round(settled / max(ch, 1), 3)
                    r["cache_hits"] = stats["cache_hits"] - before["cache_hits"]
                    # chunks whose doubtful sentences alone went to the encoder
                    r["routed_share"] = round(
                        (stats.get("routed", 0) - before.get("routed", 0)) / max(ch, 1), 3)
                results.setdefault(name, {}).setdefault(load, {})[f"c{conc}"] = r
                print(name, load, conc, r, flush=True)
        if sc._pool is not None:
            await sc._pool.get().aclose()
    return results


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="embedded")
    ap.add_argument("--model", default=None)
    ap.add_argument("--requests", type=int, default=64)
    args = ap.parse_args()
    res = asyncio.run(main_async(args))
    out = {"backend": args.backend, "model": args.model, "output_chars": 2048,
           "workloads": {"benign": "test-split LLM answers (XSTest safe completions, MedQuAD, "
                                   "Japanese LLM answers, Aegis safe responses), 2 KB each",
                         "harmful": "test-split JailbreakBench jailbroken responses and DICES "
                                    "unsafe turns, 2 KB each"},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "torch_threads": _torch_threads(), "bf16_native": bf16_native()},
           "results": res}
    OUT.parent.mkdir(exist_ok=True)
    suffix = "" if args.backend == "embedded" else f"_{args.backend}"
    path = OUT.with_name(f"harm_bench{suffix}.json")
    path.write_text(json.dumps(out, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
