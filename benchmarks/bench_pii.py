"""PII scanner latency per 2 KB output: pattern-only vs NER, measured in the same run.

Each text is 2,048 characters; the scanner's full ``scan()`` path is timed (normalisation,
presidio in the default thread-pool executor, span mapping, operators). Texts:

* ``en_typical``: an English answer (Pride and Prejudice prose) with an email, a phone and a
  card number, the usual case of an LLM output that mentions a little personal data;
* ``en_dense``: presidio_synth texts back to back (names, addresses, a few identifiers);
* ``ja_typical``: Japanese prose (人間失格) with an email, a mobile number and a My Number;
* ``ja_dense``: generated Japanese identifier sentences back to back.

Usage: ``.venv/bin/python benchmarks/bench_pii.py [--iterations 200] [--modes pattern ner]``.
Japanese NER is used in ner mode only when the optional ja-ginza package is importable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZE = 2048


def data_dir() -> Path:
    return Path(os.environ.get("GUARDRAIL_EVAL_DATA", ROOT.parent / "shared" / "eval"))


def _fill(parts: list[str], sep: str) -> str:
    out = ""
    i = 0
    while len(out) < SIZE:
        out += parts[i % len(parts)] + sep
        i += 1
    return out[:SIZE]


def texts() -> dict[str, str]:
    from eval_pii import generate

    d = data_dir()
    pride = (d / "pd_texts" / "en_gutenberg_1342_pride_and_prejudice.txt").read_text()
    start = pride.index("It is a truth universally acknowledged")
    en_prose = " ".join(pride[start : start + 4000].split())
    pii_en = (" You can reach Elizabeth at lizzy.bennet@longbourn.co.uk or on +1 212-555-0143;"
              " the deposit was paid with card 4111 1111 1111 1111. ")
    en_typical = (en_prose[:900] + pii_en + en_prose[900:])[:SIZE]
    synth = json.loads((d / "presidio_synth" / "synth_dataset_v2.json").read_text())
    en_dense = _fill([r["full_text"] for r in synth[:80]], " ")
    ja = (d / "pd_texts" / "ja_dazai_ningen_shikkaku.txt").read_text()
    ja_prose = "".join(ja[:6000].split())
    pii_ja = ("連絡先は taro.yamada@example.co.jp、携帯 090-1234-5678、"
              "マイナンバーは 1234 5678 9018 です。")
    ja_typical = (ja_prose[:800] + pii_ja + ja_prose[800:])[:SIZE]
    ja_dense = _fill([t for t, _ in generate(20)], "")
    return {"en_typical": en_typical, "en_dense": en_dense,
            "ja_typical": ja_typical, "ja_dense": ja_dense}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def time_scanner(scanner, text: str, iterations: int) -> dict[str, float]:
    from guardrail.pipeline.types import RequestMeta, ScanContext

    meta = RequestMeta(request_id="b", route="/", policy_name="p", policy_version="v",
                       system_id="s")
    for _ in range(5):  # warm-up (first calls build regex caches)
        await scanner.scan(ScanContext(text=text, meta=meta))
    ms = []
    found = 0
    for _ in range(iterations):
        ctx = ScanContext(text=text, meta=meta)
        t = time.perf_counter()
        res = await scanner.scan(ctx)
        ms.append((time.perf_counter() - t) * 1000)
        found = len(res.findings)
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 0.95), 2),
            "p99_ms": round(pct(ms, 0.99), 2), "mean_ms": round(statistics.fmean(ms), 2),
            "iterations": iterations, "findings": found, "chars": len(text)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--ner-iterations", type=int, default=30)
    ap.add_argument("--modes", nargs="+", default=["pattern", "ner"])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pii_latency.json"))
    args = ap.parse_args()
    from guardrail.scanners.pii import PiiConfig, PiiScanner

    corpus = texts()
    out: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "text_chars": SIZE, "modes": {},
    }
    for mode in args.modes:
        t0 = time.perf_counter()
        scanner = PiiScanner(PiiConfig(mode=mode), None)
        scanner.load()
        load_s = time.perf_counter() - t0
        n = args.iterations if mode == "pattern" else args.ner_iterations
        info = scanner.info()
        res = {name: asyncio.run(time_scanner(scanner, text, n)) for name, text in corpus.items()}
        out["modes"][mode] = {"load_s": round(load_s, 2), "models": info.details["models"],
                              "degraded": info.degraded, "results": res}
        print(mode, json.dumps(out["modes"][mode], ensure_ascii=False), flush=True)
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main()
