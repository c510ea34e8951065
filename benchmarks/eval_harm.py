"""Evaluate the embedded harm model the way users meet it (issue 11).

    .venv/bin/python benchmarks/harm_corpus.py    # once: embed the corpus (cached under /tmp)
    .venv/bin/python benchmarks/eval_harm.py [--no-loso]

Reports, with the shipped heads (``models/harm/heads.npz``, fitted on the train split only)
and the shipped policy's thresholds and actions (``policies/default.yaml``):

1. **test split, shipped path**: every test row scored through ``EmbeddedBackend.predict``
   exactly as the scanner runs it (cascade, zoom; chunk features served from the corpus cache,
   sentences embedded live) and decided by the policy (max over chunks per category):
   * benign **false blocks** (and flags, reported apart) per ordinary-text source, per
     language: literature, encyclopaedic text, casual chat, service dialogue, short sentences,
     LLM answers, medical answers; plus XSTest safe completions, Aegis safe responses and
     JailbreakBench refusals;
   * toxic language (F1 of the block decision; flag-or-block too), harmful assistance in LLM
     responses, per category in the standard taxonomy, self-harm and threat recall;
   * the tiers: share of chunks the static stage settles, and every decision compared with
     the reference path (cascade off: every chunk through the encoder).
2. **Japanese held out**: Japan AISI's aisev prompts (never trained on) against the test
   split's benign Japanese (``ja_heldout``);
   **ordinary text never trained on** (``unseen_ordinary``): the other ordinary text in
   ``../shared/eval`` that no head, gate or threshold has read: *Pride and Prejudice*, Tiny
   Shakespeare and Dazai's *Ningen Shikkaku* (``pd_texts``), students' short answers on
   computing topics (``plagiarism_clough_stevenson``) and presidio's synthetic customer
   messages and records (``presidio_synth``, every distinct text), passages of about 600
   characters, on the shipped path (Dazai and Austen are also authors of training books, so
   those two works are unseen text by seen authors);
3. **leave one source out** (LOSO): the heads refitted without a source (all its splits), that
   source scored at the shipped thresholds (encoder stage, no cascade): English toxic-language
   sources pooled (F1), Japanese pooled (AUROC), harmful assistance with JailbreakBench and DICES
   each held out (F1), and each ordinary-text source held out (false blocks).
Writes ``benchmarks/results/harm_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harm_corpus import CHUNK_LAYERS, CachedEncoder, CRow  # noqa: E402
from harm_tiers import ORDINARY_SOURCES, benign_groups  # noqa: E402
from train_harm import Corpus, fit  # noqa: E402

from guardrail.harm.embedded import DEFAULT_MODEL_DIR, HEADS_FILE, EmbeddedBackend, Heads  # noqa: E402
from guardrail.pipeline.types import detect_language  # noqa: E402
from guardrail.scanners.harm import HarmConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
POLICY = Path(__file__).resolve().parents[1] / "policies" / "default.yaml"


def policy_harm_config(path: Path = POLICY) -> HarmConfig:
    from guardrail.policy import load_policy_file

    for sc in load_policy_file(path).scanners:
        if isinstance(sc, HarmConfig):
            return sc
    raise SystemExit(f"{path}: no harm scanner")


def decide(scores: list[dict[str, float]], cfg: HarmConfig,
           chunks: list[str] | tuple[str, ...]) -> tuple[str, set[str]]:
    """The scanner's decision on an output: every chunk's scores under its language's rules
    (``languages:`` in the policy), the strongest action over chunks and categories."""
    blocked: set[str] = set()
    flagged: set[str] = set()
    for d, text in zip(scores, chunks, strict=True):
        lang = detect_language(text)
        for k, v in d.items():
            tier = cfg.decide(k, v, cfg.rule_in(lang, k))
            if tier is None:
                continue
            (blocked if tier[1].value == "block" else flagged).add(k)
    return ("block" if blocked else "flag" if flagged else "allow"), blocked | flagged


def f1(y: np.ndarray, pred: np.ndarray) -> dict[str, float | int | None]:
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"n": int(len(y)), "pos": int(y.sum()), "precision": round(p, 4),
            "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def auroc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score(y, s)), 4) if 0 < y.sum() < len(y) else None


def label_reports(crows: list[CRow], outcomes: list[tuple[str, set[str]]],
                  best: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang in ("en", "ja"):
        idx = [i for i, c in enumerate(crows) if c.row.lang == lang]
        tl = [(i, c.row.toxic()) for i, c in ((i, crows[i]) for i in idx)]
        tl = [(i, y) for i, y in tl if y is not None]
        if tl:
            y = np.array([v for _, v in tl])
            ii = [i for i, _ in tl]
            out[f"toxic_language_{lang}"] = {
                "block": f1(y, np.array([outcomes[i][0] == "block" for i in ii])),
                "flag_or_block": f1(y, np.array([outcomes[i][0] != "allow" for i in ii])),
                "auroc_toxic": auroc(y, np.array([best[i].get("toxic", 0) for i in ii])),
            }
    ha = [(i, c.row.label("harmful_assistance")) for i, c in enumerate(crows)
          if c.row.kind == "llm_output"]
    ha = [(i, y) for i, y in ha if y is not None]
    if ha:
        y = np.array([v for _, v in ha])
        ii = [i for i, _ in ha]
        out["harmful_assistance_llm_output"] = {
            "block": f1(y, np.array([outcomes[i][0] == "block" for i in ii])),
            "flag_or_block": f1(y, np.array([outcomes[i][0] != "allow" for i in ii])),
            "auroc": auroc(y, np.array([best[i].get("harmful_assistance", 0) for i in ii])),
            "by_source": {s: f1(np.array([v for i, v in ha if crows[i].row.source == s]),
                                np.array([outcomes[i][0] == "block" for i, _ in ha
                                          if crows[i].row.source == s]))
                          for s in sorted({crows[i].row.source for i in ii})}}
    cats: dict[str, Any] = {}
    for c in sorted({k for b in best for k in b}):
        lab = [(i, cr.row.label(c) if c != "toxic" else cr.row.toxic())
               for i, cr in enumerate(crows)]
        lab = [(i, y) for i, y in lab if y is not None]
        y = np.array([v for _, v in lab])
        if not len(y) or y.sum() < 5:
            continue
        ii = [i for i, _ in lab]
        cats[c] = {"auroc": auroc(y, np.array([best[i].get(c, 0) for i in ii])),
                   "recall_intervened": round(float(np.mean(
                       [outcomes[i][0] != "allow" for i, v in lab if v == 1])), 4),
                   "recall_blocked": round(float(np.mean(
                       [outcomes[i][0] == "block" for i, v in lab if v == 1])), 4),
                   "pos": int(y.sum())}
    out["categories"] = cats
    return out


def report_groups(crows: list[CRow]) -> dict[str, list[int]]:
    """The calibration's benign groups plus JailbreakBench's refusals (reported, not budgeted)."""
    groups = benign_groups(crows)
    jbb = [i for i, c in enumerate(crows) if c.row.source == "jbb" and not c.row.harmful]
    if jbb:
        groups["jbb_refusals/en"] = jbb
    return groups


def shipped_backend(cfg: HarmConfig, enc: Any) -> EmbeddedBackend:
    """The embedded backend as the policy's harm scanner runs it (cascade, zoom, routing),
    chunk features served by ``enc``."""
    be = EmbeddedBackend(DEFAULT_MODEL_DIR, cascade=cfg.cascade, zoom_from=cfg.zoom_from,
                         encoder=enc, route_sentences=cfg.route_sentences,
                         route_power=cfg.route_power, route_escalate=cfg.route_escalate)
    be.load()
    return be


def shipped_test(corpus: Corpus, cfg: HarmConfig, test: list[CRow]) -> dict[str, Any]:
    enc = CachedEncoder(corpus)
    tiered = shipped_backend(cfg, enc)
    ref = EmbeddedBackend(DEFAULT_MODEL_DIR, cascade=False, zoom_from=cfg.zoom_from,
                          encoder=enc, heads=tiered.heads)
    ref.load()
    # the other routing, side by side: doubtful sentences alone vs their whole chunk
    other = EmbeddedBackend(DEFAULT_MODEL_DIR, cascade=cfg.cascade, zoom_from=cfg.zoom_from,
                            encoder=enc, heads=tiered.heads,
                            route_sentences=not cfg.route_sentences,
                            route_power=cfg.route_power, route_escalate=cfg.route_escalate)
    other.load()
    t0 = time.time()
    outs, refs, others, best = [], [], [], []
    for c in test:
        s = tiered.predict(list(c.chunks))
        r = ref.predict(list(c.chunks))
        outs.append(decide(s, cfg, c.chunks))
        refs.append(decide(r, cfg, c.chunks))
        others.append(decide(other.predict(list(c.chunks)), cfg, c.chunks))
        b: dict[str, float] = defaultdict(float)
        for d in s:
            for k, v in d.items():
                b[k] = max(b[k], v)
        best.append(dict(b))
    groups = report_groups(test)
    benign = {g: {"n": len(idx),
                  "blocked": round(float(np.mean([outs[i][0] == "block" for i in idx])), 4),
                  "flagged": round(float(np.mean([outs[i][0] == "flag" for i in idx])), 4),
                  "blocked_by": dict(sorted(
                      defaultdict(int, {k: sum(1 for i in idx if outs[i][0] == "block"
                                               and k in outs[i][1])
                                        for k in {k for i in idx for k in outs[i][1]}}).items()))}
              for g, idx in sorted(groups.items())}
    enc.save()
    diff = [i for i in range(len(test)) if outs[i][0] != refs[i][0]]
    ref_caught = [i for i in range(len(test)) if refs[i][0] != "allow"]
    lost = [i for i in ref_caught if outs[i][0] == "allow"]
    rep = label_reports(test, outs, best)

    def path_summary(got: list[tuple[str, set[str]]], be: EmbeddedBackend) -> dict[str, Any]:
        blocked = {g: round(float(np.mean([got[i][0] == "block" for i in idx])), 4)
                   for g, idx in sorted(groups.items())}
        return {"route_sentences": be.route_sentences,
                "route_escalate": be.route_escalate if be.route_sentences else None,
                "benign_blocked": blocked,
                "benign_worst_blocked": max(v for g, v in blocked.items()
                                            if not g.startswith("jbb")),
                "decisions_differing_from_reference": sum(
                    got[i][0] != refs[i][0] for i in range(len(test))),
                "let_through_vs_reference": round(sum(
                    got[i][0] == "allow" for i in ref_caught) / max(len(ref_caught), 1), 4),
                "stats": dict(be.stats)}
    rep.update({
        "benign_by_source": benign,
        "benign_worst_blocked": max(v["blocked"] for g, v in benign.items()
                                    if not g.startswith("jbb")),
        "tiers": {**tiered.stats, "settled_share": round(tiered.stats["settled"]
                                                        / max(tiered.stats["chunks"], 1), 4),
                  "decisions_differing_from_reference": len(diff),
                  "reference_interventions": len(ref_caught),
                  "let_through_vs_reference": round(len(lost) / max(len(ref_caught), 1), 4),
                  "live_encoder_texts": enc.misses},
        "rows": len(test), "seconds": round(time.time() - t0, 1),
        "other_routing": path_summary(others, other),
    })
    return rep


LOSO_EN_TOXIC = ("davidson", "ethos", "convabuse", "diasafety", "stormfront", "toxigen",
                 "wiki_toxicity")
LOSO_JA = ("ja_toxic", "xsafety")
LOSO_ASSIST = ("jbb", "dices", "xstest")  # xstest: safe completions (false blocks)


def loso(corpus: Corpus, cfg: HarmConfig, layers: tuple[int, ...],
         ordinary: bool = True) -> dict[str, Any]:
    everything = corpus.crows
    train = [c for c in everything if c.split == "train"]
    out: dict[str, Any] = {}
    pooled: dict[str, list[Any]] = defaultdict(list)
    held = [*LOSO_EN_TOXIC, *LOSO_JA, *LOSO_ASSIST, *(sorted(ORDINARY_SOURCES) if ordinary else [])]
    for src in held:
        t0 = time.time()
        heads = fit(corpus, [c for c in train if c.row.source != src], layers,
                    static_stage=False)
        rows = [c for c in everything if c.row.source == src]
        texts, owner = [], []
        for i, c in enumerate(rows):
            texts += list(c.chunks)
            owner += [i] * len(c.chunks)
        s2 = heads.stage2(texts, corpus.X(texts, layers))
        per: list[list[dict[str, float]]] = [[] for _ in rows]
        for d, i in zip(s2, owner, strict=True):
            per[i].append(d)
        outs = [decide(p, cfg, c.chunks) for p, c in zip(per, rows, strict=True)]
        best = [{k: max(d[k] for d in p) for k in p[0]} for p in per]
        rep = label_reports(rows, outs, best)
        rep["benign_blocked"] = round(float(np.mean(
            [o[0] == "block" for o, c in zip(outs, rows, strict=True) if not c.row.harmful]
            or [0.0])), 4)
        rep["benign_flagged"] = round(float(np.mean(
            [o[0] == "flag" for o, c in zip(outs, rows, strict=True) if not c.row.harmful]
            or [0.0])), 4)
        rep["seconds"] = round(time.time() - t0, 1)
        out[src] = rep
        for i, c in enumerate(rows):
            pooled[src].append((c, outs[i], best[i]))
        print(src, json.dumps({k: v for k, v in rep.items() if k != "categories"})[:400],
              file=sys.stderr, flush=True)

    def pool(srcs: tuple[str, ...]) -> dict[str, Any]:
        items = [x for s in srcs for x in pooled[s]]
        return label_reports([x[0] for x in items], [x[1] for x in items],
                             [x[2] for x in items])

    return {"per_source": out, "pooled_en_toxic": pool(LOSO_EN_TOXIC),
            "pooled_ja": pool(LOSO_JA),
            "ordinary_blocked": {s: out[s]["benign_blocked"] for s in sorted(ORDINARY_SOURCES)
                                 if s in out},
            "ordinary_flagged": {s: out[s]["benign_flagged"] for s in sorted(ORDINARY_SOURCES)
                                 if s in out}}


def ja_heldout(corpus: Corpus, cfg: HarmConfig, test: list[CRow]) -> dict[str, Any]:
    """Japanese from a source never trained on: Japan AISI's aisev prompts (written to draw
    toxic or unfair answers) against the Japanese benign rows of the test split, on the shipped
    path. Prompts, not outputs, so it measures ranking, not the output decision."""
    from harm_corpus import CachedEncoder

    from guardrail.harm.chunking import chunks
    from guardrail.harm.datasets import data_root, jaisi

    enc = CachedEncoder(corpus)
    be = shipped_backend(cfg, enc)
    pos = [r.text for r in jaisi(data_root())]
    neg = [c.row.text for c in test if c.row.lang == "ja" and not c.row.harmful]

    def score(text: str) -> tuple[float, str]:
        parts = chunks(text)[:3] or [text[:400]]
        s = be.predict(parts)
        top = max(max((v for k, v in d.items()), default=0.0) for d in s)
        return top, decide(s, cfg, parts)[0]

    sp = [score(t) for t in pos]
    sn = [score(t) for t in neg]
    enc.save()
    y = np.array([1] * len(sp) + [0] * len(sn))
    return {"prompts": len(sp), "benign": len(sn),
            "auroc_max_category": auroc(y, np.array([a for a, _ in sp + sn])),
            "prompts_blocked": round(float(np.mean([o == "block" for _, o in sp])), 4),
            "prompts_intervened": round(float(np.mean([o != "allow" for _, o in sp])), 4),
            "benign_blocked": round(float(np.mean([o == "block" for _, o in sn])), 4)}


UNSEEN_WORKS = {  # pd_texts file -> (reported name, language)
    "en_gutenberg_1342_pride_and_prejudice.txt": ("pride_and_prejudice", "en"),
    "en_tiny_shakespeare.txt": ("tiny_shakespeare", "en"),
    "ja_dazai_ningen_shikkaku.txt": ("ningen_shikkaku", "ja"),
}


def unseen_texts(root: Path, per_work: int = 200, seed: int = 0) -> dict[str, list[str]]:
    """Ordinary passages from sources of ``../shared/eval`` that training never read."""
    import random

    from guardrail.harm.ordinary import _passages

    rng = random.Random(seed)
    out: dict[str, list[str]] = {}
    for fname, (name, lang) in UNSEEN_WORKS.items():
        text = (root / "pd_texts" / fname).read_text(encoding="utf-8")
        m = re.search(r"\*\*\* START OF.*?\*\*\*(.*)\*\*\* END OF", text, re.S)
        text = m.group(1) if m else text  # the Gutenberg licence is not the book
        if lang == "en":  # Shakespeare's speaker lines
            text = re.sub(r"(?m)^[A-Z][A-Za-z ]+:\n", "", text)
        out[f"{name}/{lang}"] = _passages(text, rng, per_work, size=600,
                                          min_chars=120 if lang == "en" else 60)
    answers = []
    for f in sorted((root / "plagiarism_clough_stevenson").glob("g*.txt")):
        t = re.sub(r"\s+", " ", f.read_text(encoding="utf-8", errors="replace")).strip()
        if len(t) >= 120:
            answers.append(t)
    out["clough_stevenson_answers/en"] = answers
    synth = json.loads((root / "presidio_synth" / "synth_dataset_v2.json").read_text("utf-8"))
    out["presidio_synth/en"] = sorted({t for d in synth
                                       if len(t := re.sub(r"\s+", " ", d["full_text"]).strip())
                                       >= 20})
    return out


def unseen_ordinary(corpus: Corpus, cfg: HarmConfig) -> dict[str, Any]:
    """Benign false blocks (and flags) on ordinary text no part of the model was fitted or
    tuned on, decided on the shipped path (cascade, zoom, routing, the policy)."""
    from guardrail.harm.chunking import chunks
    from guardrail.harm.datasets import data_root

    enc = CachedEncoder(corpus)
    be = shipped_backend(cfg, enc)
    out: dict[str, Any] = {}
    for name, texts in unseen_texts(data_root()).items():
        got = []
        for t in texts:
            parts = chunks(t) or [t]
            got.append(decide(be.predict(parts), cfg, parts))
        by: dict[str, int] = defaultdict(int)
        for o, cats in got:
            if o == "block":
                for k in cats:
                    by[k] += 1
        out[name] = {"n": len(got),
                     "blocked": round(float(np.mean([o == "block" for o, _ in got])), 4),
                     "flagged": round(float(np.mean([o == "flag" for o, _ in got])), 4),
                     "blocked_by": dict(sorted(by.items())),
                     "examples_blocked": [t[:160] for t, (o, _) in zip(texts, got, strict=True)
                                          if o == "block"][:5]}
        print("unseen", name, {k: v for k, v in out[name].items() if k != "examples_blocked"},
              file=sys.stderr, flush=True)
    enc.save()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-loso", action="store_true")
    ap.add_argument("--loso-no-ordinary", action="store_true",
                    help="leave out the folds that hold out each ordinary-text source")
    ap.add_argument("--out", default=str(RESULTS / "harm_eval.json"))
    ap.add_argument("--route-escalate", type=float, default=None,
                    help="report the test split with this route_escalate instead of the "
                         "policy's (a variant decided on val; write it to another --out)")
    ap.add_argument("--unseen-only", action="store_true",
                    help="only the never-trained-on ordinary sources, merged into --out")
    args = ap.parse_args()
    cfg = policy_harm_config()
    if args.route_escalate is not None:
        cfg = cfg.model_copy(update={"route_escalate": args.route_escalate})
    heads = Heads.load(DEFAULT_MODEL_DIR / HEADS_FILE)
    corpus = Corpus(token_layer=heads.meta.get("token_layer", 8))
    test = [c for c in corpus.crows if c.split == "test"]
    if args.unseen_only:
        res0 = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        res0["unseen_ordinary"] = unseen_ordinary(corpus, cfg)
        Path(args.out).write_text(json.dumps(res0, indent=1, ensure_ascii=False))
        print("wrote", args.out)
        return
    res: dict[str, Any] = {"policy": str(POLICY), "route_escalate": cfg.route_escalate,
                           "heads_meta": {
        k: heads.meta.get(k) for k in ("trained", "rows", "encoder", "token_layer")},
        "layers": list(heads.layers), "cached_layers": list(CHUNK_LAYERS)}
    res["test_split"] = shipped_test(corpus, cfg, test)
    res["ja_heldout_aisev"] = ja_heldout(corpus, cfg, test)
    res["unseen_ordinary"] = unseen_ordinary(corpus, cfg)
    print("ja_heldout_aisev", res["ja_heldout_aisev"], file=sys.stderr)
    print(json.dumps({k: v for k, v in res["test_split"].items() if k != "categories"},
                     indent=1)[:6000], file=sys.stderr)
    if not args.no_loso:
        res["loso"] = loso(corpus, cfg, heads.layers, not args.loso_no_ordinary)
    elif Path(args.out).is_file() and "loso" in (old := json.loads(Path(args.out).read_text())):
        # LOSO scores the encoder path alone (no cascade, no routing): kept from the last run
        res["loso"] = {**old["loso"], "note": "from an earlier run of eval_harm.py (--no-loso)"}
    RESULTS.mkdir(exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1, ensure_ascii=False))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
