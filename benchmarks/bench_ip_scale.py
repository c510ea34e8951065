"""Corpus index at scale: registration throughput, memory per window, cold load, query latency.

Works are generated from ``pd_texts`` (Pride and Prejudice, Tiny Shakespeare, Dazai): random
2,000-word (4,000-character) excerpts with 15% of words (characters) substituted, so that
windows are distinct. They are registered through the real registry (SQLite + index) until
``--windows`` windows exist. Then, in fresh processes:

- ours: open the index (cold load), RSS (anonymous and file-backed), query latency of 2 KB
  outputs (unrelated XSTest completions and outputs containing a copied, 10%-edited passage),
  full path: tokenise, MinHash, LSH lookup, verification.
- baseline: datasketch ``MinHashLSH`` (in memory, threshold 0.3, num_perm 128) over the first
  ``--baseline-windows`` windows' signatures (the same signatures), its insert rate, memory,
  pickle reload and query latency for the same outputs (LSH lookup of every output window;
  no verification), extrapolated linearly to ``--windows``.

    .venv/bin/python benchmarks/bench_ip_scale.py [--windows 1000000] [--baseline-windows 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def data_dir() -> Path:
    return Path(os.environ.get("GUARDRAIL_EVAL_DATA", ROOT.parent / "shared" / "eval"))


def rss() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024  # MiB
    return out


def sources() -> tuple[list[str], list[str], str]:
    pd = data_dir() / "pd_texts"
    en = (pd / "en_gutenberg_1342_pride_and_prejudice.txt").read_text(encoding="utf-8").split()
    en += (pd / "en_tiny_shakespeare.txt").read_text(encoding="utf-8").split()
    ja = (pd / "ja_dazai_ningen_shikkaku.txt").read_text(encoding="utf-8")
    return en, sorted(set(en)), ja


def gen_work(rng: np.random.Generator, en: list[str], vocab: list[str], ja: str, i: int) -> str:
    if i % 10 == 9:  # one work in ten is Japanese
        start = int(rng.integers(0, len(ja) - 4000))
        chars = list(ja[start : start + 4000])
        pos = rng.choice(len(chars), size=600, replace=False)
        pool = rng.integers(0x4E00, 0x9FA0, size=600)
        for p, c in zip(pos, pool, strict=True):
            chars[p] = chr(int(c))
        return "".join(chars)
    start = int(rng.integers(0, len(en) - 2000))
    words = en[start : start + 2000]
    pos = rng.choice(2000, size=300, replace=False)
    pool = rng.integers(0, len(vocab), size=300)
    for p, v in zip(pos, pool, strict=True):
        words[p] = vocab[v]
    return " ".join(words)


def outputs(n: int, copy_texts: list[str], seed: int) -> dict[str, list[str]]:
    """2 KB outputs: unrelated (XSTest completions) and with a copied, edited passage."""
    rng = random.Random(seed)
    xs: list[str] = []
    for f in sorted((data_dir() / "xstest").glob("xstest_v2_completions_*.csv")):
        with f.open(encoding="utf-8") as fh:
            xs.extend(r["completion"] for r in csv.DictReader(fh) if len(r["completion"]) > 200)
    def two_kb(parts: list[str]) -> str:
        text = " ".join(parts)
        return text.encode()[:2048].decode(errors="ignore")
    unrelated = [two_kb(rng.sample(xs, 8)) for _ in range(n)]
    copied = []
    for _ in range(n):
        words = rng.choice(copy_texts).split()
        i = rng.randrange(0, max(1, len(words) - 60))
        passage = words[i : i + 60]
        for _ in range(6):
            passage[rng.randrange(len(passage))] = "lorem"
        pre = two_kb(rng.sample(xs, 4))[:1200]
        copied.append(two_kb([pre, " ".join(passage), two_kb(rng.sample(xs, 2))]))
    return {"unrelated": unrelated, "copied": copied}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q))] * 1000, 3)


# --------------------------------------------------------------------------- phases
def phase_build(args: argparse.Namespace) -> dict:
    from guardrail.corpus.index import CorpusIndex
    from guardrail.corpus.registry import CorpusRegistry, WorkInput
    from guardrail.db import make_engine, upgrade

    en, vocab, ja = sources()
    rng = np.random.default_rng(1)
    url = f"sqlite:///{args.dir}/bench.db"
    engine = make_engine(url)
    upgrade(url, engine)
    reg = CorpusRegistry(engine, CorpusIndex.open(Path(args.dir) / "index"))
    reg.upsert_corpus("bench", "Public domain (perturbed)", "public-domain")
    total, works, batches = 0, 0, []
    gen_s = 0.0
    t0 = time.perf_counter()
    while total < args.windows:
        g = time.perf_counter()
        batch = [WorkInput(f"w{works + i}", gen_work(rng, en, vocab, ja, works + i))
                 for i in range(args.batch)]
        gen_s += time.perf_counter() - g
        b = time.perf_counter()
        res = reg.add_works("bench", batch)
        batches.append(time.perf_counter() - b)
        total += res.windows
        works += len(res.added)
    wall = time.perf_counter() - t0 - gen_s
    c = time.perf_counter()
    reg.index.compact()
    compact_s = time.perf_counter() - c
    disk = sum(f.stat().st_size for f in (Path(args.dir) / "index").rglob("*.npy"))
    disk_lsh = sum(f.stat().st_size for f in (Path(args.dir) / "index").rglob("*.npy")
                   if f.name != "text.npy")
    return {
        "windows": total, "works": works, "registration_s": round(wall, 2),
        "windows_per_s": round(total / wall), "batch_works": args.batch,
        "batch_seconds_p50": round(sorted(batches)[len(batches) // 2], 3),
        "compact_s": round(compact_s, 2),
        "disk_bytes_per_window_lsh": round(disk_lsh / total, 1),
        "disk_bytes_per_window_with_text": round(disk / total, 1),
        "build_process_peak_rss_mib": round(rss()["VmHWM"], 1),
    }


def phase_query(args: argparse.Namespace) -> dict:
    t_imp = time.perf_counter()
    from guardrail.corpus.detect import detect
    from guardrail.corpus.index import CorpusIndex

    import_s = time.perf_counter() - t_imp
    base = rss()
    t0 = time.perf_counter()
    idx = CorpusIndex.open(Path(args.dir) / "index")
    open_s = time.perf_counter() - t0
    first = time.perf_counter()
    detect(idx, "warm up query text " * 20)
    first_s = time.perf_counter() - first
    after_open = rss()
    seg = idx.snapshot.segments[0]
    copy_texts = [seg.work_text(i) for i in range(0, len(seg.work_ids), 97)[:50]]
    outs = outputs(args.queries, copy_texts, seed=3)
    res: dict = {"windows": idx.stats()["windows"], "import_s": round(import_s, 3),
                 "cold_open_s": round(open_s, 4), "first_query_s": round(first_s, 4)}
    for kind, texts in outs.items():
        lat, held = [], 0
        for t in texts:
            s = time.perf_counter()
            m = detect(idx, t)
            lat.append(time.perf_counter() - s)
            held += bool(m)
        res[f"query_{kind}"] = {"n": len(texts), "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                                "mean_ms": round(sum(lat) / len(lat) * 1000, 3),
                                "matched": held}
    end = rss()
    n = res["windows"]
    res["rss_mib"] = {"before_open": base, "after_open": after_open, "after_queries": end}
    res["rss_bytes_per_window_after_queries"] = round(
        (end["VmRSS"] - base["VmRSS"]) * 2**20 / n, 1)
    # worst case: every page of the LSH arrays resident (touch them all)
    for a in (seg.keys, seg.ids, seg.win):
        int(np.asarray(a).sum())
    touched = rss()
    res["rss_mib_all_lsh_pages_touched"] = touched
    res["rss_bytes_per_window_all_lsh_touched"] = round(
        (touched["VmRSS"] - base["VmRSS"]) * 2**20 / n, 1)
    return res


def phase_baseline(args: argparse.Namespace) -> dict:
    from datasketch import LeanMinHash, MinHashLSH

    from guardrail.corpus.index import CorpusIndex
    from guardrail.corpus.minhash import window_signatures
    from guardrail.corpus.text import tokenize

    idx = CorpusIndex.open(Path(args.dir) / "index")
    p = idx.params
    seg = idx.snapshot.segments[0]
    n = min(args.baseline_windows, seg.size)
    # the same windows' signatures, recomputed from the registered texts
    sigs: list[np.ndarray] = []
    widx = 0
    while sum(len(s) for s in sigs) < n:
        sigs.append(window_signatures(tokenize(seg.work_text(widx)), p, p.stride_units).signatures)
        widx += 1
    allsig = np.concatenate(sigs)[:n]
    copy_texts = [seg.work_text(i) for i in range(0, widx, max(1, widx // 50))]
    outs = outputs(args.queries, copy_texts, seed=3)
    base = rss()
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=0.3, num_perm=p.num_perm)
    with lsh.insertion_session() as sess:
        for i in range(n):
            sess.insert(i, LeanMinHash(seed=p.seed, hashvalues=allsig[i], scheme="affine32"),
                        check_duplication=False)
    build_s = time.perf_counter() - t0
    mem = rss()
    res: dict = {"windows": n, "lsh_params_b_r": [lsh.b, lsh.r], "insert_s": round(build_s, 2),
                 "windows_per_s": round(n / build_s),
                 "rss_bytes_per_window": round((mem["VmRSS"] - base["VmRSS"]) * 2**20 / n, 1)}
    for kind, texts in outs.items():
        lat, cands = [], []
        for t in texts:
            s = time.perf_counter()
            w = window_signatures(tokenize(t), p, p.stride_units)
            found = set()
            for sig in w.signatures:
                found.update(lsh.query(LeanMinHash(seed=p.seed, hashvalues=sig,
                                                   scheme="affine32")))
            lat.append(time.perf_counter() - s)
            cands.append(len(found))
        res[f"query_{kind}"] = {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                                "median_candidates": sorted(cands)[len(cands) // 2]}
    f = Path(args.dir) / "lsh.pkl"
    t = time.perf_counter()
    f.write_bytes(pickle.dumps(lsh, protocol=pickle.HIGHEST_PROTOCOL))
    res["pickle_s"] = round(time.perf_counter() - t, 2)
    res["pickle_bytes_per_window"] = round(f.stat().st_size / n, 1)
    del lsh
    t = time.perf_counter()
    pickle.loads(f.read_bytes())
    res["reload_s"] = round(time.perf_counter() - t, 2)
    scale = args.windows / n
    res["extrapolated_to"] = args.windows
    res["extrapolated"] = {
        "rss_gib": round(res["rss_bytes_per_window"] * args.windows / 2**30, 2),
        "insert_s": round(build_s * scale, 1),
        "reload_s": round(res["reload_s"] * scale, 1),
    }
    return res


def run_phase(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--dir", args.dir,
           "--windows", str(args.windows), "--baseline-windows", str(args.baseline_windows),
           "--queries", str(args.queries), "--batch", str(args.batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=1_000_000)
    ap.add_argument("--baseline-windows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--batch", type=int, default=1000, help="works per registration call")
    ap.add_argument("--phase", choices=["build", "query", "baseline"])
    ap.add_argument("--dir", help="work directory (kept; default: a temporary one)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ip_scale.json"))
    args = ap.parse_args()
    if args.phase:
        fn = {"build": phase_build, "query": phase_query, "baseline": phase_baseline}[args.phase]
        print(json.dumps(fn(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.dir:
            Path(args.dir).mkdir(parents=True, exist_ok=True)
        args.dir = args.dir or tmp
        t0 = time.perf_counter()
        result = {"machine": {"cpus": os.cpu_count()},
                  "build": run_phase("build", args)}
        print("build", result["build"], flush=True)
        result["ours"] = run_phase("query", args)
        print("ours", result["ours"], flush=True)
        result["datasketch_baseline"] = run_phase("baseline", args)
        print("baseline", result["datasketch_baseline"], flush=True)
        result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
