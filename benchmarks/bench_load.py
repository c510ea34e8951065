"""Load: the official ``openai`` async client against guardrail in front of a fast fake
upstream (benchmarks/fast_upstream.py; a different real 2 KB LLM answer per request), streaming
and not, at concurrency 1..128, with 1 and 2 workers, the shipped default policy and a policy
with no scanners; beside the upstream called directly at the same concurrency (the baseline of
"added latency"). Then a soak: a steady rate for ``--soak-s`` seconds, resident memory of the
guardrail processes sampled. Writes benchmarks/results/load.json.

    python benchmarks/bench_load.py [--seconds 6] [--conc 1,8,32,128] [--soak-s 600]

Each cell runs for ``--seconds`` after a short warm-up: requests/s (requests that started and
ended in the window), p50 and p99 latency of those, added p50/p99 (minus the direct upstream's
at the same concurrency), and the error rate (exceptions and non-2xx among them). A saturated
cell (the shipped policy at high concurrency, requests taking longer than the window) completes
few or none: its rps and latencies are then lower bounds, not measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "load.json"
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_proxy import free_port, pct, wait_up  # noqa: E402


def _rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and its children (the workers), from /proc."""
    total = 0
    pids = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


async def cell(base_url: str, key: str, conc: int, seconds: float, stream: bool,
               warmup_s: float = 1.0) -> dict[str, Any]:
    import httpx
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120,
                                http_client=httpx.AsyncClient(limits=httpx.Limits(
                                    max_connections=conc + 4)))
    lat: list[float] = []
    errors = attempts = 0
    t_start = time.perf_counter()
    measure_from = t_start + warmup_s
    stop = measure_from + seconds

    async def one() -> None:
        nonlocal errors, attempts
        t0 = time.perf_counter()
        ok = True
        try:
            if stream:
                s = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": "Summarise."}],
                    stream=True, extra_body={"vary": True})
                async for _ in s:
                    pass
            else:
                await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": "Summarise."}],
                    extra_body={"vary": True})
        except Exception:  # noqa: BLE001 - counted as an error
            ok = False
        t1 = time.perf_counter()
        if t0 >= measure_from and t1 <= stop:  # started and ended in the window
            attempts += 1
            if ok:
                lat.append(t1 - t0)
            else:
                errors += 1

    async def worker() -> None:
        while time.perf_counter() < stop:
            await one()

    await asyncio.gather(*(worker() for _ in range(conc)))
    await client.close()
    return {"seconds": seconds, "rps": len(lat) / seconds,
            "p50_ms": pct(lat, 50) * 1000 if lat else None,
            "p99_ms": pct(lat, 99) * 1000 if lat else None, "completed": len(lat),
            "error_rate": errors / attempts if attempts else None}


def start_guardrail(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "guardrail.cli", "serve", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    wait_up(f"http://127.0.0.1:{port}/healthz", timeout=180)
    return proc, f"http://127.0.0.1:{port}/v1"


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--conc", default="1,8,32,128")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--soak-s", type=float, default=600.0)
    ap.add_argument("--soak-rps", type=float, default=4.0)
    ap.add_argument("--soak-only", action="store_true",
                    help="only the soak; the load cells of the last run are kept")
    args = ap.parse_args()
    concs = [int(c) for c in args.conc.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="gr-load-"))
    from bench_harm import outputs

    texts = tmp / "texts.json"
    texts.write_text(json.dumps(outputs(4000, 0.0, seed=5)[0], ensure_ascii=False),
                     encoding="utf-8")
    pdir = tmp / "policies"
    pdir.mkdir()
    (pdir / "none.yaml").write_text("name: none\nscanners: []\n", encoding="utf-8")
    shipped = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    (pdir / "shipped.yaml").write_text(shipped.replace("name: default", "name: shipped", 1),
                                       encoding="utf-8")
    from guardrail.settings import key_id

    up_port = free_port()
    env = {**os.environ, "GUARDRAIL_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
           "GUARDRAIL_API_KEYS": "k-none,k-shipped", "GUARDRAIL_POLICY_DIR": str(pdir),
           "GUARDRAIL_DEFAULT_POLICY": "none",
           "GUARDRAIL_KEY_POLICIES": f"{key_id('k-shipped')}=shipped",
           "GUARDRAIL_DATABASE_URL": f"sqlite:///{tmp}/load.db",
           "GUARDRAIL_LOG_LEVEL": "warning", "BENCH_TEXTS": str(texts), "HF_HUB_OFFLINE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks.fast_upstream:app", "--port",
         str(up_port), "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "seconds_per_cell": args.seconds, "output_bytes": 2048, "client": "openai.AsyncOpenAI",
        "cells": []}
    if args.soak_only:
        try:
            wait_up(f"http://127.0.0.1:{up_port}/")
            last = json.loads(OUT.read_text())
            last["soak"] = soak(env, tmp, args.soak_s, args.soak_rps)
        finally:
            upstream.terminate()
            upstream.wait(timeout=10)
        OUT.write_text(json.dumps(last, indent=2))
        print(json.dumps({k: v for k, v in last["soak"].items() if k != "samples_mb"}))
        return
    try:
        wait_up(f"http://127.0.0.1:{up_port}/")
        direct = f"http://127.0.0.1:{up_port}/v1"
        base: dict[tuple[int, bool], dict[str, Any]] = {}
        for stream in (False, True):
            for c in concs:
                base[(c, stream)] = asyncio.run(cell(direct, "x", c, args.seconds, stream))
                results["cells"].append({"target": "direct", "workers": 0, "policy": "-",
                                         "stream": stream, "concurrency": c,
                                         **base[(c, stream)]})
        for workers in [int(w) for w in args.workers.split(",")]:
            proc, url = start_guardrail({**env, "GUARDRAIL_DATABASE_URL":
                                         f"sqlite:///{tmp}/load-{workers}.db"}, workers)
            try:
                for policy, key in (("none", "k-none"), ("shipped", "k-shipped")):
                    for stream in (False, True):
                        for c in concs:
                            r = asyncio.run(cell(url, key, c, args.seconds, stream))
                            b = base[(c, stream)]
                            for q in ("p50", "p99"):
                                r[f"added_{q}_ms"] = (r[f"{q}_ms"] - b[f"{q}_ms"]
                                                      if r[f"{q}_ms"] is not None
                                                      and b[f"{q}_ms"] is not None else None)
                            results["cells"].append({"target": "guardrail", "workers": workers,
                                                     "policy": policy, "stream": stream,
                                                     "concurrency": c, **r})
                            print(json.dumps(results["cells"][-1]), flush=True)
            finally:
                stop(proc)
        if args.soak_s > 0:
            results["soak"] = soak(env, tmp, args.soak_s, args.soak_rps)
        elif OUT.exists() and "soak" in json.loads(OUT.read_text()):
            results["soak"] = json.loads(OUT.read_text())["soak"]  # the last soak's, kept
            results["soak"]["note"] = "from an earlier run of this benchmark (--soak-s 0)"
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results.get("soak"), indent=2))


def soak(env: dict[str, str], tmp: Path, seconds: float, rps: float) -> dict[str, Any]:
    """A steady ``rps`` (half streamed) with the shipped policy on one process; RSS sampled
    every 15 s; growth measured from the first sample after a one-minute warm-up."""
    import httpx
    import openai

    proc, url = start_guardrail({**env, "GUARDRAIL_DATABASE_URL": f"sqlite:///{tmp}/soak.db"},
                                1)
    samples: list[tuple[float, int]] = []
    errors = done = most_pending = 0
    failures: dict[str, float] = {}

    async def run() -> None:
        nonlocal errors, done, most_pending
        client = openai.AsyncOpenAI(base_url=url, api_key="k-shipped", max_retries=0,
                                    timeout=120, http_client=httpx.AsyncClient())
        t0 = time.perf_counter()
        next_sample = 0.0
        i = 0
        pending: set[asyncio.Task[None]] = set()

        async def one(stream: bool) -> None:
            nonlocal errors, done
            try:
                if stream:
                    s = await client.chat.completions.create(
                        model="bench", messages=[{"role": "user", "content": "Hi."}],
                        stream=True, extra_body={"vary": True})
                    async for _ in s:
                        pass
                else:
                    await client.chat.completions.create(
                        model="bench", messages=[{"role": "user", "content": "Hi."}],
                        extra_body={"vary": True})
                done += 1
            except Exception:  # noqa: BLE001
                errors += 1

        while (now := time.perf_counter() - t0) < seconds:
            if now >= next_sample:
                samples.append((now, _rss_kb(proc.pid)))
                next_sample += 15
            most_pending = max(most_pending, len(pending))
            task = asyncio.create_task(one(i % 2 == 1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            await asyncio.sleep(max(0.0, i / rps - (time.perf_counter() - t0)))
        await asyncio.gather(*pending)
        samples.append((time.perf_counter() - t0, _rss_kb(proc.pid)))
        await client.close()
        # fail-opens count as a sign of overload: the rate must stay below capacity
        async with httpx.AsyncClient(timeout=30) as http:
            metrics = (await http.get(url.removesuffix("/v1") + "/metrics")).text
        for line in metrics.splitlines():
            if line.startswith("guardrail_scanner_failures_total{"):
                failures[line.split("{", 1)[1].split("}")[0]] = float(line.rsplit(" ", 1)[1])

    try:
        asyncio.run(run())
    finally:
        stop(proc)
    warm = next((kb for t, kb in samples if t >= 60), samples[0][1])
    last = samples[-1][1]
    return {"seconds": seconds, "rate_rps": rps, "policy": "shipped", "completed": done,
            "errors": errors, "scanner_failures": failures, "most_in_flight": most_pending,
            "rss_mb_after_warmup": warm / 1024, "rss_mb_end": last / 1024,
            "growth_pct": (last - warm) / warm * 100 if warm else None,
            "samples_mb": [(round(t), round(kb / 1024, 1)) for t, kb in samples]}


if __name__ == "__main__":
    main()
