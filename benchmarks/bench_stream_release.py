"""The stream relay's scan schedule before the first release, A/B on the same texts.

    .venv/bin/python benchmarks/bench_stream_release.py [--texts 30] [--pace-ms 25]

In one process, on the same real 2 KB answers (``bench_harm.outputs``: the harm corpus' test
split, a different answer per stream) fed as 20-character chunks to
:class:`guardrail.proxy.streaming.StreamGuard` with the shipped policy's scanners (the IP scanner
left out: with no registered works it holds nothing): ``before`` = the earlier schedule (a scan
every ``first_release_chars`` until something is released), ``now`` = the shipped one (also a
scan as soon as a sentence ends; a scan that could release nothing skipped). Each variant and
mode runs in a process of its own (the harm model's embedding cache is per process).
``burst``: chunks as fast as the relay takes them (total time, scans); ``paced``: one chunk
every ``--pace-ms`` (time to the first release, time after the last chunk). No HTTP: the
proxy's own numbers are ``bench_proxy.py``'s.
Writes benchmarks/results/stream_release.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_harm import outputs, pct  # noqa: E402

from guardrail.deps import Client  # noqa: E402
from guardrail.pipeline.runner import Pipeline, ScannerCache  # noqa: E402
from guardrail.pipeline.types import RequestMeta  # noqa: E402
from guardrail.policy import load_policy_file  # noqa: E402
from guardrail.proxy.streaming import StreamGuard  # noqa: E402
from tests.mocks.stores import fake_state  # noqa: E402 - an in-memory incident store
from tests.proxy.test_stream_release import fake_runtime  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "stream_release.json"


def before_schedule(self: StreamGuard, st: Any) -> bool:
    """The schedule before the sentence-end trigger (commit f266d49)."""
    if st.scanned == 0:
        return len(st.text) >= self.floor + self.first_release
    if st.released == 0:
        return len(st.text) - st.scanned >= self.first_release
    return len(st.text) - st.scanned >= self.scan_every


def chunk(piece: str | None, finish: str | None = None) -> str:
    delta = {} if piece is None else {"content": piece}
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


async def one(pipe: Pipeline, text: str, pace: float) -> tuple[float, float | None, float]:
    """(total seconds, seconds to the first release, seconds after the last chunk)."""
    pol = pipe.policy
    meta = RequestMeta(request_id="r", route="/v1/chat/completions", policy_name=pol.name,
                       policy_version=pol.version, system_id="s")
    g = StreamGuard(fake_state(), Client(key_id=None, policy=pol, pipeline=pipe),  # type: ignore[arg-type]
                    meta, chat=True)
    t0 = time.perf_counter()
    first = None
    for i in range(0, len(text), 20):
        if i and pace:
            await asyncio.sleep(pace)
        if await g.feed(chunk(text[i:i + 20])) and first is None:
            first = time.perf_counter() - t0
        if g.stopped:
            break
    t_last = time.perf_counter()
    if not g.stopped:
        await g.feed(chunk(None, "stop"))
    await g.finish()
    end = time.perf_counter()
    return end - t0, first, end - t_last


async def measure(variant: str, mode: str, texts: list[str], pace_ms: float) -> dict[str, Any]:
    pol = load_policy_file(ROOT / "policies" / "default.yaml")
    pol = pol.model_copy(update={"scanners": [s for s in pol.scanners if s.type != "ip"]})
    pipe = Pipeline(pol, ScannerCache(fake_runtime()))
    if variant == "before":
        StreamGuard._scan_due = before_schedule  # type: ignore[method-assign]
        StreamGuard._could_release = lambda self, st: True  # type: ignore[method-assign]
    scans = 0
    real = StreamGuard._scan_and_release

    async def counting(self: StreamGuard, st: Any, final: bool) -> list[bytes]:
        nonlocal scans
        scans += 1
        return await real(self, st, final)

    StreamGuard._scan_and_release = counting  # type: ignore[method-assign]
    await one(pipe, "Warm up. " * 20, 0)
    scans = 0
    pace = pace_ms / 1000 if mode == "paced" else 0.0
    runs = [await one(pipe, t, pace) for t in texts]
    total = [r[0] * 1000 for r in runs]
    first = [r[1] * 1000 for r in runs if r[1] is not None]
    after = [r[2] * 1000 for r in runs]
    return {"streams": len(texts), "scans": scans, "total_p50_ms": pct(total, 0.5),
            "total_mean_ms": round(statistics.mean(total), 1),
            "first_release_p50_ms": pct(first, 0.5), "first_release_p99_ms": pct(first, 0.99),
            "after_last_p50_ms": pct(after, 0.5), "after_last_p99_ms": pct(after, 0.99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=30)
    ap.add_argument("--pace-ms", type=float, default=25.0)
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    texts, reused = outputs(args.texts, 0.0, seed=3)
    if args.one:
        print(json.dumps(asyncio.run(measure(*args.one, texts, args.pace_ms))))
        return
    import subprocess

    results: dict[str, dict[str, Any]] = {}
    for mode in ("burst", "paced"):
        for variant in ("before", "now"):
            out = subprocess.run(
                [sys.executable, __file__, "--texts", str(args.texts), "--pace-ms",
                 str(args.pace_ms), "--one", variant, mode],
                check=True, capture_output=True, text=True).stdout
            results.setdefault(variant, {})[mode] = json.loads(out.strip().splitlines()[-1])
            print(variant, mode, results[variant][mode], flush=True)
    res = {"texts": args.texts, "source_texts_reused": reused, "chunk_chars": 20,
           "pace_ms": args.pace_ms, "scanners": "shipped policy without ip",
           "results": results}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
