"""Proxy overhead: direct vs through guardrail (no scanners) vs with the denylist scanner.

Every request gets a different 2 KB answer (real LLM answers from the harm corpus' test
split), so no scanner cache answers.

One run, one fast fake upstream (benchmarks/fast_upstream.py) and one guardrail process with
two client keys mapped to two policies. Latency at concurrency 1 interleaves direct and proxied
requests one by one (this shared 2-core machine drifts; interleaving cancels the drift);
throughput at concurrency 16 and 64 alternates short batches; streaming measures time to first
token; paced streaming (shipped policy) has the upstream send its chunks at a steady pace, as an
LLM does, so scanning overlaps generation. Writes benchmarks/results/proxy.json.

    python benchmarks/bench_proxy.py [--requests 300] [--seconds 3] [--baseline REV]

``--baseline REV`` also starts guardrail as it was at git revision REV (a worktree, same
venv, that revision's shipped policy) and measures it side by side, interleaved with the
others: ``baseline_*`` targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "proxy.json"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Summarise the report."}]}

POLICIES = {
    "none": "name: none\nscanners: []\n",
    "denylist": """name: denylist
scanners:
  - type: denylist
    name: banned
    terms: [forbidden-codename, 社外秘, confidential-project, internal-only-token]
  - type: denylist
    name: secrets
    action: redact
    patterns: ['sk-[a-z0-9]{20,}', '-----begin [a-z ]*private key-----']
""",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one(client: httpx.AsyncClient, url: str, key: str, stream: bool,
              pace_ms: float = 0) -> tuple[float, float]:
    t0 = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    body = {**BODY, "vary": True}  # fresh text per request: no scanner cache hits
    if pace_ms:
        body["pace_ms"] = pace_ms
    if not stream:
        r = await client.post(url, json=body, headers=headers)
        r.raise_for_status()
        return time.perf_counter() - t0, 0.0
    ttft = 0.0
    async with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not ttft and '"content": "' in line and '"content": ""' not in line:
                ttft = time.perf_counter() - t0
    return time.perf_counter() - t0, ttft


async def latency(targets: dict[str, tuple[str, str]], n: int, stream: bool,
                  pace_ms: float = 0, warmup: int = 10) -> dict:
    res: dict[str, dict[str, list[float]]] = {k: {"total": [], "ttft": []} for k in targets}
    async with httpx.AsyncClient(timeout=60) as client:
        for url, key in targets.values():  # warm-up
            for _ in range(warmup):
                await one(client, url, key, stream, pace_ms)
        for _ in range(n):
            for name, (url, key) in targets.items():
                total, ttft = await one(client, url, key, stream, pace_ms)
                res[name]["total"].append(total)
                res[name]["ttft"].append(ttft)
    base = res["direct"]
    out = {}
    for name, r in res.items():
        out[name] = {"p50_ms": pct(r["total"], 50) * 1000, "p99_ms": pct(r["total"], 99) * 1000}
        if name != "direct":
            diffs = [a - b for a, b in zip(r["total"], base["total"], strict=True)]
            out[name]["added_p50_ms"] = (pct(r["total"], 50) - pct(base["total"], 50)) * 1000
            out[name]["added_p99_ms"] = (pct(r["total"], 99) - pct(base["total"], 99)) * 1000
            out[name]["paired_added_median_ms"] = statistics.median(diffs) * 1000
        if stream:
            out[name]["ttft_p50_ms"] = pct(r["ttft"], 50) * 1000
            out[name]["ttft_p99_ms"] = pct(r["ttft"], 99) * 1000
    return out


async def latency_conc(targets: dict[str, tuple[str, str]], n: int, conc: int) -> dict:
    """Per-request latency with ``conc`` requests in flight, target by target."""
    out: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=conc)) as c:
        for name, (url, key) in targets.items():
            lat: list[float] = []
            left = n

            async def worker(url: str = url, key: str = key, lat: list[float] = lat) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    lat.append((await one(c, url, key, False))[0])

            await asyncio.gather(*(worker() for _ in range(conc)))
            out[name] = {"p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000}
    for name in out:
        if name != "direct":
            out[name]["added_p50_ms"] = out[name]["p50_ms"] - out["direct"]["p50_ms"]
    return out


async def throughput(targets: dict[str, tuple[str, str]], conc: int, seconds: float,
                     rounds: int) -> dict:
    counts = {k: 0 for k in targets}
    elapsed = {k: 0.0 for k in targets}
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    # one client (one pool) per target, so the targets never compete for pooled connections
    clients = {k: httpx.AsyncClient(timeout=60, limits=limits) for k in targets}
    try:
        for _ in range(rounds):
            for name, (url, key) in targets.items():
                client = clients[name]
                stop = time.perf_counter() + seconds
                done = 0

                async def worker(client: httpx.AsyncClient, stop: float, url: str,
                                 key: str) -> None:
                    nonlocal done
                    while time.perf_counter() < stop:
                        await one(client, url, key, False)
                        done += 1

                t0 = time.perf_counter()
                await asyncio.gather(*(worker(client, stop, url, key) for _ in range(conc)))
                elapsed[name] += time.perf_counter() - t0
                counts[name] += done
    finally:
        for c in clients.values():
            await c.aclose()
    rps = {k: counts[k] / elapsed[k] for k in targets}
    return {k: {"rps": v, "ratio_to_direct": v / rps["direct"]} for k, v in rps.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--full-requests", type=int, default=60,
                    help="requests per target for the shipped default policy (harm model etc.)")
    ap.add_argument("--pace-ms", type=float, default=25.0,
                    help="paced streaming: ms between the upstream's 20-char chunks")
    ap.add_argument("--paced-requests", type=int, default=10)
    ap.add_argument("--baseline", default=None,
                    help="git revision to measure side by side (e.g. the previous release)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gr-bench-"))
    # the upstream answers real 2 KB LLM answers (the harm corpus' test split, English and
    # Japanese; never trained on), a different one per request
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_harm import outputs

    texts = tmp / "texts.json"
    texts.write_text(json.dumps(outputs(4000, 0.0, seed=3)[0], ensure_ascii=False),
                     encoding="utf-8")
    def policy_dir(path: Path, tree: Path) -> Path:
        """The bench policies, and ``tree``'s own shipped policy as ``shipped``."""
        path.mkdir()
        for name, text in POLICIES.items():
            (path / f"{name}.yaml").write_text(text, encoding="utf-8")
        shipped = (tree / "policies" / "default.yaml").read_text(encoding="utf-8")
        (path / "shipped.yaml").write_text(shipped.replace("name: default", "name: shipped", 1),
                                           encoding="utf-8")
        return path

    pdir = policy_dir(tmp / "policies", ROOT)
    from guardrail.settings import key_id

    up_port, gr_port = free_port(), free_port()
    env = {**os.environ, "GUARDRAIL_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
           "GUARDRAIL_API_KEYS": "k-none,k-deny,k-shipped", "GUARDRAIL_POLICY_DIR": str(pdir),
           "GUARDRAIL_DEFAULT_POLICY": "none",
           "GUARDRAIL_KEY_POLICIES": f"{key_id('k-deny')}=denylist,{key_id('k-shipped')}=shipped",
           "GUARDRAIL_DATABASE_URL": f"sqlite:///{tmp}/bench.db", "GUARDRAIL_LOG_LEVEL": "warning",
           "BENCH_TEXTS": str(texts)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.fast_upstream:app",
                          "--port", str(up_port), "--log-level", "warning", "--no-access-log"],
                         cwd=ROOT, env=env),
        subprocess.Popen([sys.executable, "-m", "guardrail.cli", "serve", "--port", str(gr_port)],
                         cwd=ROOT, env=env),
    ]
    base_port = None
    if args.baseline:
        tree = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline],
                       cwd=ROOT, check=True, capture_output=True)
        base_port = free_port()
        # cwd first on sys.path: that tree's guardrail package, not the installed one; that
        # tree's shipped policy (a newer policy may use settings the older code rejects)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "guardrail.cli", "serve", "--port", str(base_port)],
            cwd=tree, env={**env, "GUARDRAIL_DATABASE_URL": f"sqlite:///{tmp}/base.db",
                           "GUARDRAIL_POLICY_DIR": str(policy_dir(tmp / "base_policies", tree)),
                           "PYTHONPATH": str(tree)}))
    try:
        wait_up(f"http://127.0.0.1:{up_port}/")
        wait_up(f"http://127.0.0.1:{gr_port}/healthz")
        targets = {
            "direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", "x"),
            "proxy_no_scanners": (f"http://127.0.0.1:{gr_port}/v1/chat/completions", "k-none"),
            "proxy_denylist": (f"http://127.0.0.1:{gr_port}/v1/chat/completions", "k-deny"),
        }
        base_url = f"http://127.0.0.1:{base_port}/v1/chat/completions"
        if base_port is not None:
            wait_up(f"http://127.0.0.1:{base_port}/healthz", timeout=120)
            targets["baseline_no_scanners"] = (base_url, "k-none")
            targets["baseline_denylist"] = (base_url, "k-deny")
        results = {
            "baseline": args.baseline,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "output_bytes": 2048,
            "requests_per_target_c1": args.requests,
            "latency_c1_nonstreaming": asyncio.run(latency(targets, args.requests, False)),
            "latency_c1_streaming": asyncio.run(latency(targets, args.requests // 2, True)),
            "throughput_c16": asyncio.run(throughput(targets, 16, args.seconds, args.rounds)),
            "throughput_c64": asyncio.run(throughput(targets, 64, args.seconds, args.rounds)),
        }
        full = {"direct": targets["direct"],
                "proxy_shipped_default_policy": (targets["proxy_denylist"][0], "k-shipped")}
        if base_port is not None:
            full["baseline_shipped_default_policy"] = (base_url, "k-shipped")
        results["shipped_default_policy"] = {
            "note": "policies/default.yaml as shipped (denylist, harm, pii, ip; empty corpus)",
            "latency_c1_nonstreaming": asyncio.run(latency(full, args.full_requests, False)),
            "latency_c1_streaming": asyncio.run(latency(full, args.full_requests // 2, True)),
            "throughput_c8": asyncio.run(throughput(full, 8, args.seconds, 1)),
            "latency_c8_nonstreaming": asyncio.run(latency_conc(full, args.full_requests, 8)),
            "latency_c1_streaming_paced": {
                "note": f"upstream streams 20-char chunks {args.pace_ms:g} ms apart "
                        f"({20000 / args.pace_ms:.0f} chars/s; an LLM at ~50 tokens/s is ~200): "
                        "scans overlap generation, so the added time is what is left after "
                        "the last upstream chunk",
                **asyncio.run(latency(full, args.paced_requests, True, args.pace_ms, warmup=1)),
            },
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "baseline")],
                           cwd=ROOT, capture_output=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
