"""Near-duplicate detection quality on ``GUARDRAIL_EVAL_DATA`` (see the issue's acceptance).

1. Clough-Stevenson: the 5 Wikipedia sources are registered; the 95 answers are probes.
   Recall per class (cut / light / heavy) at the policy threshold, false positives on ``non``.
2. pd_texts (Pride and Prejudice, Tiny Shakespeare, Dazai): each work registered without a
   held-back 15% tail. Probes of 30-300 words (60-600 Japanese characters) cut at random
   offsets from the registered part, with 0-30% word (character) edits: recall table.
   False holds: XSTest completions (unrelated LLM text) and passages of the held-back part
   (same author, never registered).

Decision rule = the IP scanner's defaults: a passage of >= 20 words / 40 CJK characters with
similarity >= the policy threshold (0.5). Writes benchmarks/results/eval_ip.json.

    GUARDRAIL_EVAL_DATA=../shared/eval .venv/bin/python benchmarks/eval_ip.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from guardrail.corpus.detect import DetectRules, detect  # noqa: E402
from guardrail.corpus.index import CorpusIndex  # noqa: E402
from guardrail.corpus.text import _TOKEN_RE  # noqa: E402

THRESHOLD = 0.5
EN_LENGTHS = [30, 50, 100, 300]
JA_LENGTHS = [60, 100, 160, 600]
EDITS = [0.0, 0.05, 0.10, 0.20, 0.30]


def data_dir() -> Path:
    return Path(os.environ.get("GUARDRAIL_EVAL_DATA", ROOT.parent / "shared" / "eval"))


def held(index: CorpusIndex, text: str, rules: DetectRules) -> tuple[bool, list]:
    matches = detect(index, text, rules)
    return any(m.similarity >= THRESHOLD for m in matches), matches


# ----------------------------------------------------------------------------- probes
def word_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN_RE.finditer(text)]


def edit_words(words: list[str], rate: float, vocab: list[str], rng: random.Random) -> list[str]:
    """Substitute, delete or insert ``round(rate * len)`` words at random positions."""
    out = list(words)
    for _ in range(round(rate * len(words))):
        op = rng.random()
        pos = rng.randrange(len(out))
        if op < 0.5:
            out[pos] = rng.choice(vocab)
        elif op < 0.75 and len(out) > 2:
            del out[pos]
        else:
            out.insert(pos, rng.choice(vocab))
    return out


def en_probe(text: str, spans, n: int, rate: float, vocab, rng) -> str:
    i = rng.randrange(0, len(spans) - n)
    piece = text[spans[i][0] : spans[i + n - 1][1]]
    return " ".join(edit_words(piece.split(), rate, vocab, rng))


def ja_probe(text: str, n: int, rate: float, chars: list[str], rng) -> str:
    # cut from the original text (punctuation kept), edit characters
    i = rng.randrange(0, len(text) - n)
    return "".join(edit_words(list(text[i : i + n]), rate, chars, rng))


def pd_eval(root: Path, n_probes: int, rng: random.Random, out_dir: Path) -> dict:
    pd = root / "pd_texts"
    works = {
        "pride": (pd / "en_gutenberg_1342_pride_and_prejudice.txt").read_text(encoding="utf-8"),
        "shakespeare": (pd / "en_tiny_shakespeare.txt").read_text(encoding="utf-8"),
        "dazai": (pd / "ja_dazai_ningen_shikkaku.txt").read_text(encoding="utf-8"),
    }
    # Project Gutenberg's licence text repeats its own header: keep only the book, so that
    # the held-back part is text the registered part does not contain
    pride = works["pride"]
    start = pride.find("*** START OF")
    end = pride.find("*** END OF")
    if start >= 0 and end > start:
        works["pride"] = pride[pride.index("\n", start) + 1 : end]
    registered, unseen = {}, {}
    for name, text in works.items():
        cut = int(len(text) * 0.85)
        registered[name], unseen[name] = text[:cut], text[cut:]
    index = CorpusIndex.open(out_dir / "pd")
    t0 = time.perf_counter()
    windows = sum(index.add_works([(i + 1, registered[n]) for i, n in enumerate(works)]).values())
    reg_s = time.perf_counter() - t0
    rules = DetectRules()
    table: dict[str, dict[str, float]] = {}
    misses: list[dict] = []
    for lang, names, lengths in (
        ("en", ["pride", "shakespeare"], EN_LENGTHS),
        ("ja", ["dazai"], JA_LENGTHS),
    ):
        for n in lengths:
            for rate in EDITS:
                hit = 0
                for p in range(n_probes):
                    name = names[p % len(names)]
                    text = registered[name]
                    if lang == "en":
                        spans = word_spans(text)
                        vocab = text.split()[:20000]
                        probe = en_probe(text, spans, n, rate, vocab, rng)
                    else:
                        chars = sorted(set(text))
                        probe = ja_probe(text, n, rate, chars, rng)
                    ok, _ = held(index, probe, rules)
                    hit += ok
                    if not ok and rate <= 0.10 and len(misses) < 20:
                        misses.append({"lang": lang, "n": n, "edits": rate, "probe": probe})
                table.setdefault(f"{lang}_{n}", {})[f"{int(rate * 100)}%"] = round(
                    hit / n_probes, 4
                )
    # false holds: unrelated LLM text (XSTest completions) and unseen same-author passages
    xs = []
    for f in sorted((root / "xstest").glob("xstest_v2_completions_*.csv")):
        with f.open(encoding="utf-8") as fh:
            xs.extend(r["completion"] for r in csv.DictReader(fh) if r["completion"].strip())
    lat = []
    xs_held = 0
    for t in xs:
        s = time.perf_counter()
        ok, _ = held(index, t, rules)
        lat.append(time.perf_counter() - s)
        xs_held += ok
    unseen_probes = []
    for name, text in unseen.items():
        for _ in range(n_probes * 2):
            if name == "dazai":
                n = rng.choice(JA_LENGTHS)
                i = rng.randrange(0, len(text) - n)
                unseen_probes.append(text[i : i + n])
            else:
                spans = word_spans(text)
                n = rng.choice(EN_LENGTHS)
                i = rng.randrange(0, len(spans) - n)
                unseen_probes.append(text[spans[i][0] : spans[i + n - 1][1]])
    unseen_held = []
    for t in unseen_probes:
        ok, m = held(index, t, rules)
        if ok:
            unseen_held.append({"text": t[:200], "passage_words": m[0].longest.words})
    lat.sort()
    return {
        "registered_windows": windows,
        "registration_s": round(reg_s, 3),
        "recall": table,
        "false_holds": {
            "xstest_completions": {"n": len(xs), "held": xs_held, "rate": xs_held / len(xs)},
            "unseen_same_work": {
                "n": len(unseen_probes),
                "held": len(unseen_held),
                "rate": len(unseen_held) / len(unseen_probes),
                "examples": unseen_held[:5],
            },
        },
        "xstest_latency_ms": {
            "p50": round(lat[len(lat) // 2] * 1000, 3),
            "p99": round(lat[int(len(lat) * 0.99)] * 1000, 3),
        },
        "misses_at_most_10pct": misses,
    }


def clough_eval(root: Path, out_dir: Path) -> dict:
    cs = root / "plagiarism_clough_stevenson"
    index = CorpusIndex.open(out_dir / "cs")
    tasks = "abcde"
    sources = [(cs / f"orig_task{t}.txt").read_text(encoding="latin-1") for t in tasks]
    index.add_works([(i + 1, text) for i, text in enumerate(sources)])
    rules = DetectRules()
    per: dict[str, list[int]] = {}
    right_work = 0
    with (cs / "file_information.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = (cs / row["File"]).read_text(encoding="latin-1")
            ok, matches = held(index, text, rules)
            per.setdefault(row["Category"], []).append(int(ok))
            if ok and matches[0].work_id == tasks.index(row["Task"]) + 1:
                right_work += 1
    res = {
        c: {"n": len(v), "held": sum(v), "rate": round(sum(v) / len(v), 4)} for c, v in per.items()
    }
    return {"per_class": res, "held_with_right_source": right_work}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--probes", type=int, default=100, help="probes per (length, edit) cell")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_ip.json"))
    args = ap.parse_args()
    root = data_dir()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "decision_rule": {
                "threshold_similarity": THRESHOLD,
                **{k: v for k, v in DetectRules().__dict__.items() if k != "align"},
                "align": DetectRules().align.__dict__,
            },
            "clough_stevenson": clough_eval(root, Path(tmp)),
            "pd_texts": pd_eval(root, args.probes, rng, Path(tmp)),
        }
    result["index_params"] = CorpusIndex(Path("/nonexistent")).params.as_dict()
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False))
    summary = {k: v for k, v in result["pd_texts"].items() if k != "misses_at_most_10pct"}
    print(json.dumps({"clough_stevenson": result["clough_stevenson"], **summary}, indent=1,
                     ensure_ascii=False))


if __name__ == "__main__":
    main()
