"""Evaluate a harm backend on ``GUARDRAIL_EVAL_DATA``.

    .venv/bin/python benchmarks/eval_harm.py                      # embedded: LOSO + in-source
    .venv/bin/python benchmarks/eval_harm.py --backend detoxify --model /path/to/x.ckpt
    .venv/bin/python benchmarks/eval_harm.py --backend transformers --model /path/or/hub-id

Embedded: **leave-one-source-out** (train on every source but one, score that one; a source
and its parallel translation count as one source) beside an in-source 3-fold split. Other
backends are not trained here, so every source is out of source for them. For each held-out
source and pooled per language: AUROC, AUPRC and F1 at the policy threshold, for "any harm"
(max over categories) and per category where the source labels it; plus the share of XSTest's
safe-prompt completions flagged (whole completions, chunked as the scanner does).
Writes benchmarks/results/harm_eval_<backend>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harm_embed_cache import CachedEncoder, EmbedCache  # noqa: E402
from train_harm import Vocab, first_chunk, fit, prepare  # noqa: E402

from guardrail.harm.chunking import chunks  # noqa: E402
from guardrail.harm.datasets import Row, load_all  # noqa: E402
from guardrail.harm.embedded import EmbeddedBackend, Heads  # noqa: E402
from guardrail.harm.taxonomy import ALL_CATEGORIES, CATEGORIES, GENERAL  # noqa: E402
from guardrail.scanners.harm import HarmConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCANNER_CHUNK = HarmConfig(type="harm").chunk_chars  # whole outputs are chunked as the scanner does


def metrics(y: np.ndarray, s: np.ndarray, th: float) -> dict[str, float | int | None]:
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    out: dict[str, float | int | None] = {"n": int(len(y)), "pos": int(y.sum())}
    both = 0 < y.sum() < len(y)
    out["auroc"] = round(float(roc_auc_score(y, s)), 4) if both else None
    out["auprc"] = round(float(average_precision_score(y, s)), 4) if both else None
    pred = s >= th
    out["f1"] = round(float(f1_score(y, pred, zero_division=0)), 4) if y.sum() else None
    out["flagged"] = round(float(pred.mean()), 4)
    out["recall"] = round(float(pred[y == 1].mean()), 4) if y.sum() else None
    return out


def any_score(d: dict[str, float], th: dict[str, float]) -> float:
    """Max over categories after rescaling each by its threshold onto the ``any`` threshold."""
    t0 = th["any"]
    return max(v * t0 / th.get(k, t0) for k, v in d.items())


def policy_harm_config(path: Path) -> HarmConfig:
    """The first ``harm`` scanner of a policy file (default: the shipped policy)."""
    from guardrail.policy import load_policy_file

    pol = load_policy_file(path)
    for sc in pol.scanners:
        if isinstance(sc, HarmConfig):
            return sc
    raise SystemExit(f"{path}: no harm scanner")


def outcome(d: dict[str, float], cfg: HarmConfig) -> str:
    """What the policy does with an output scoring ``d``: block / flag (or other) / allow."""
    acts = [cfg.decide(k, v) for k, v in d.items()]
    acts2 = [a[1].value for a in acts if a is not None]
    if "block" in acts2:
        return "block"
    return acts2[0] if acts2 else "allow"


def policy_report(rows: list[Row], scores: list[dict], cfg: HarmConfig) -> dict:
    """Per language: F1 of the policy's *block* decision against harmful / toxic labels, and
    how often it blocks or intervenes at all."""
    from sklearn.metrics import f1_score

    out: dict = {}
    for lang in ("en", "ja"):
        idx = [i for i, r in enumerate(rows) if r.lang == lang]
        oc = [outcome(scores[i], cfg) for i in idx]
        blk = np.array([o == "block" for o in oc])
        y = np.array([rows[i].harmful for i in idx])
        tl = [rows[i].toxic() for i in idx]
        m = np.array([v is not None for v in tl])
        yt = np.array([v for v in tl if v is not None])
        out[lang] = {
            "any_harm_block_f1": round(float(f1_score(y, blk, zero_division=0)), 4),
            "any_harm_block_recall": round(float(blk[y == 1].mean()), 4) if y.sum() else None,
            "toxic_language_block_f1": round(float(f1_score(yt, blk[m], zero_division=0)), 4)
            if yt.sum() else None,
            "toxic_language_block_recall": round(float(blk[m][yt == 1].mean()), 4)
            if yt.sum() else None,
            "benign_blocked": round(float(blk[y == 0].mean()), 4),
            "benign_intervened": round(float(np.mean(
                [o != "allow" for o, yy in zip(oc, y, strict=True) if yy == 0])), 4),
        }
    return out


STAGE1: dict[str, int] = {"chunks": 0, "settled": 0}
POLICY: list[HarmConfig] = []  # the policy's harm scanner config (set in main)


FIT_KW: dict = {}  # extra fit() options from the command line
ZOOM_FROM = HarmConfig(type="harm").zoom_from
STATIC_ONLY = False  # --static-only: score with the static stage alone (`encoder: false`)


def score_embedded(heads: Heads, texts: list[str], cache: EmbedCache,
                   cascade: bool) -> list[dict]:
    """Scores through the runtime backend class (same cascade and zoom as the scanner)."""
    backend = EmbeddedBackend(heads=heads, encoder=CachedEncoder(cache), cascade=cascade,
                              zoom_from=ZOOM_FROM, use_encoder=not STATIC_ONLY)
    out: list[dict] = []
    for i in range(0, len(texts), 64):
        out += backend.predict(texts[i : i + 64])
    for k in STAGE1:
        STAGE1[k] += backend.stats[k]
    return out


def settled_by_stage1(heads: Heads, texts: list[str]) -> np.ndarray:
    s1 = heads.stage1(texts)
    return np.array([heads.settles(t, p) for t, p in zip(texts, s1, strict=True)])


def report(rows: list[Row], scores: list[dict], th: dict[str, float]) -> dict:
    y = np.array([r.harmful for r in rows])
    s = np.array([any_score(d, th) for d in scores])
    res = {"any": metrics(y, s, th["any"])}
    lab = [r.toxic() for r in rows]
    m = np.array([v is not None for v in lab])
    if m.sum() and sum(v or 0 for v in lab):
        res["toxic_language"] = metrics(np.array([v for v in lab if v is not None]),
                                        np.array([d.get(GENERAL, 0.0) for d in scores])[m],
                                        th[GENERAL])
    for c in CATEGORIES:
        lab = [r.label(c) for r in rows]
        m = np.array([v is not None for v in lab])
        yc = np.array([v for v in lab if v is not None])
        if m.sum() and yc.sum():
            sc = np.array([d.get(c, 0.0) for d in scores])[m]
            res[c] = metrics(yc, sc, th.get(c, th[GENERAL]))
    return res


def xstest_flagged(heads_or_fn, rows: list[Row], th: dict[str, float], cache: EmbedCache,
                   cascade: bool = True, cfg: HarmConfig | None = None) -> dict:
    comp = [r for r in rows if r.source == "xstest" and r.group == "safe_completion"]
    best, outcomes, tox = [], [], []
    before = dict(STAGE1)
    for r in comp:
        cs = chunks(r.text, SCANNER_CHUNK) or [r.text]
        if isinstance(heads_or_fn, Heads):
            sc = score_embedded(heads_or_fn, cs, cache, cascade)
        else:
            sc = heads_or_fn(cs)
        best.append(max(max(d.values()) for d in sc))
        merged = {k: max(d.get(k, 0.0) for d in sc) for k in sc[0]}
        tox.append(merged.get(GENERAL, 0.0))
        if cfg is not None:
            outcomes.append(outcome(merged, cfg))
    b = np.array(best)
    flagged = int((b >= th[GENERAL]).sum())
    out: dict = {"n": len(comp), "flagged": flagged,
                 "share": round(flagged / max(len(comp), 1), 4),
                 "share_by_threshold": {str(t): round(float((b >= t).mean()), 4)
                                        for t in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)},
                 "share_by_threshold_toxic_only": {
                     str(t): round(float((np.array(tox) >= t).mean()), 4)
                     for t in (0.5, 0.6, 0.7, 0.8, 0.9)}}
    if outcomes:
        out["policy_blocked"] = round(outcomes.count("block") / len(outcomes), 4)
        out["policy_intervened"] = round(sum(o != "allow" for o in outcomes) / len(outcomes), 4)
    n = STAGE1["chunks"] - before["chunks"]
    if n:
        out["stage1_settled_chunks"] = round((STAGE1["settled"] - before["settled"]) / n, 4)
    return out


def group_of(r: Row) -> str:
    return r.source


def pooled(rows: list[Row], scores: list[dict], th: dict[str, float]) -> dict:
    out = {}
    for lang in ("en", "ja"):
        idx = [i for i, r in enumerate(rows) if r.lang == lang]
        out[lang] = report([rows[i] for i in idx], [scores[i] for i in idx], th)
    return out


def eval_embedded(rows: list[Row], th: dict[str, float], cascade: bool) -> dict:
    cache = EmbedCache()
    vocab = Vocab.load()
    X, F = prepare(rows, vocab, cache)
    texts = [first_chunk(r.text) for r in rows]
    groups = sorted({group_of(r) for r in rows})
    loso: list[dict | None] = [None] * len(rows)
    per_source, xs = {}, None
    settled = np.zeros(len(rows), bool)
    for g in groups:
        test = np.array([group_of(r) == g for r in rows])
        tr = [r for r, t in zip(rows, test, strict=True) if not t]
        t0 = time.time()
        heads = fit(tr, X[~test], F[~test], vocab, **FIT_KW)
        te_idx = np.flatnonzero(test)
        sc = score_embedded(heads, [texts[i] for i in te_idx], cache, cascade)
        for i, d in zip(te_idx, sc, strict=True):
            loso[i] = d
        settled[te_idx] = settled_by_stage1(heads, [texts[i] for i in te_idx])
        per_source[g] = report([rows[i] for i in te_idx], sc, th)
        if g == "xstest":
            xs = xstest_flagged(heads, rows, th, cache, cascade, POLICY[0])
        print(f"LOSO {g}: any={per_source[g]['any']} ({time.time() - t0:.0f}s)", flush=True)
    # in-source: 5-fold over all rows (what a random split would report)
    from sklearn.model_selection import StratifiedKFold

    ins: list[dict | None] = [None] * len(rows)
    strat = [f"{r.source}{r.harmful}" for r in rows]
    for tr_i, te_i in StratifiedKFold(3, shuffle=True, random_state=0).split(texts, strat):
        heads = fit([rows[i] for i in tr_i], X[tr_i], F[tr_i], vocab, **FIT_KW)
        for i, d in zip(te_i, score_embedded(heads, [texts[i] for i in te_i], cache,
                                             cascade), strict=True):
            ins[i] = d
    if cache.dirty:
        cache.save()
    harm = np.array([r.harmful == 1 for r in rows])
    llm_neg = np.array([r.kind == "llm_output" and not r.harmful for r in rows])
    cascade_stats = {
        "harmful_rows_reaching_encoder": round(float(1 - settled[harm].mean()), 4),
        "harmful_llm_outputs_reaching_encoder": round(float(
            1 - settled[harm & np.array([r.kind == "llm_output" for r in rows])].mean()), 4),
        "benign_llm_outputs_settled": round(float(settled[llm_neg].mean()), 4),
        "benign_rows_settled": round(float(settled[~harm].mean()), 4),
        "per_source_settled": {g: round(float(settled[[r.source == g for r in rows]].mean()), 4)
                               for g in groups},
    }
    print("cascade LOSO", cascade_stats, flush=True)
    return {
        "leave_one_source_out": {"pooled": pooled(rows, loso, th), "per_source": per_source,
                                 "policy_decisions": policy_report(rows, loso, POLICY[0]),
                                 "xstest_safe_completions_flagged": xs,
                                 "cascade_stage1_first_chunks": cascade_stats},
        "in_source_3fold": {"pooled": pooled(rows, ins, th)},
        "_loso_scores": loso,
    }


def eval_external(rows: list[Row], th: dict[str, float], backend) -> dict:
    scores: list[dict] = []
    texts = [first_chunk(r.text) for r in rows]
    for i in range(0, len(texts), 32):
        scores += backend.predict(texts[i : i + 32])
    per_source = {}
    for g in sorted({group_of(r) for r in rows}):
        idx = [i for i, r in enumerate(rows) if group_of(r) == g]
        per_source[g] = report([rows[i] for i in idx], [scores[i] for i in idx], th)
    xs = xstest_flagged(backend.predict, rows, th, EmbedCache(), cfg=POLICY[0])
    return {"out_of_source": {"pooled": pooled(rows, scores, th), "per_source": per_source,
                              "policy_decisions": policy_report(rows, scores, POLICY[0]),
                              "xstest_safe_completions_flagged": xs}}


def fit_on_all(rows: list[Row]) -> tuple[EmbedCache, Heads]:
    """Heads trained on every row (for the tests on data outside ``load_all``)."""
    cache = EmbedCache()
    vocab = Vocab.load()
    X, F = prepare(rows, vocab, cache)
    return cache, fit(rows, X, F, vocab, **FIT_KW)


def eval_ailuminate_fr(rows: list[Row], cfg: HarmConfig) -> dict:
    """Categories on prompts in a language and from authors the heads never saw: heads trained
    on every English and Japanese row, scored on AILuminate's separately written French prompt
    set. Per category, AUROC of that category's prompts against the other hazards' prompts, and
    how many the policy would block. The only test of ``self_harm`` outside its one source."""
    from sklearn.metrics import roc_auc_score

    from guardrail.harm.datasets import ailuminate_fr, data_root

    cache, heads = fit_on_all(rows)
    fr = ailuminate_fr(data_root())
    scores = score_embedded(heads, [first_chunk(r.text) for r in fr], cache, cascade=False)
    if cache.dirty:
        cache.save()
    out: dict = {"n": len(fr), "per_category": {}}
    for c in CATEGORIES:
        y = np.array([int(c in r.cats) for r in fr])
        if not y.sum():
            continue
        sc = np.array([d.get(c, 0.0) for d in scores])
        out["per_category"][c] = {
            "prompts": int(y.sum()),
            "auroc_vs_other_hazards": round(float(roc_auc_score(y, sc)), 4),
            "blocked_by_policy": round(float(np.mean(
                [outcome(scores[i], cfg) == "block" for i in np.flatnonzero(y)])), 4)}
    out["blocked_any_hazard"] = round(float(np.mean([outcome(d, cfg) == "block"
                                                      for d in scores])), 4)
    return out


def eval_ja_heldout(rows: list[Row], cfg: HarmConfig) -> dict:
    """Japanese text from a source the heads never saw: Japan AISI's aisev prompts (228
    prompts written to draw toxic or unfair answers: terrorism, CBRNE, violence, self-harm,
    discrimination, ...) against benign Japanese captions and Wikipedia sentences that training
    did not sample. Heads trained on every row. Reports AUROC of the "any harm" score (the max
    over categories and ``toxic``) and of ``toxic``, and what the policy blocks on each side."""
    from sklearn.metrics import roc_auc_score

    from guardrail.harm.datasets import data_root, ja_benign_unused, jaisi

    cache, heads = fit_on_all(rows)
    root = data_root()
    harmful = jaisi(root)
    benign = ja_benign_unused(root, {r.text for r in rows})
    test = harmful + benign
    scores = score_embedded(heads, [first_chunk(r.text) for r in test], cache, cascade=False)
    if cache.dirty:
        cache.save()
    y = np.array([r.harmful for r in test])
    th = {c: cfg.rule_for(c)[0] for c in ALL_CATEGORIES} | {"any": cfg.threshold}
    s_any = np.array([any_score(d, th) for d in scores])
    s_tox = np.array([d.get(GENERAL, 0.0) for d in scores])
    blocked = np.array([outcome(d, cfg) == "block" for d in scores])
    out: dict = {
        "harmful_prompts": int(y.sum()), "benign_texts": int((y == 0).sum()),
        "auroc_any": round(float(roc_auc_score(y, s_any)), 4),
        "auroc_toxic": round(float(roc_auc_score(y, s_tox)), 4),
        "harmful_blocked_by_policy": round(float(blocked[y == 1].mean()), 4),
        "benign_blocked_by_policy": round(float(blocked[y == 0].mean()), 4),
        "per_group": {},
    }
    for g in sorted({r.group for r in harmful}):
        m = np.array([r.group == g for r in test]) | (y == 0)
        out["per_group"][g] = {
            "prompts": int((m & (y == 1)).sum()),
            "auroc_any": round(float(roc_auc_score(y[m], s_any[m])), 4),
            "blocked_by_policy": round(float(blocked[m & (y == 1)].mean()), 4)}
    return out


def _rel(path: str) -> str:
    """A path inside the repository, relative to it (results files carry no home paths)."""
    root = Path(__file__).resolve().parents[1]
    p = Path(path).resolve()
    return str(p.relative_to(root)) if p.is_relative_to(root) else path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="embedded",
                    choices=["embedded", "detoxify", "transformers"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--policy", default=str(Path(__file__).resolve().parents[1]
                                            / "policies" / "default.yaml"),
                    help="thresholds and actions come from this policy's harm scanner")
    ap.add_argument("--threshold", type=float, default=None,
                    help="one threshold for every category instead of the policy's")
    ap.add_argument("--cascade", action=argparse.BooleanOptionalAction,
                    default=HarmConfig(type="harm").cascade,
                    help="embedded: let the static stage settle chunks (default: as HarmConfig)")
    ap.add_argument("--static-only", action="store_true",
                    help="embedded: the static stage alone (policy `encoder: false`)")
    ap.add_argument("--limit", type=int, default=0, help="subsample rows (quick runs)")
    ap.add_argument("--keep", type=float, default=None, help="fit(): stage-1 harmful recall")
    ap.add_argument("--zoom-from", type=float, default=None)
    ap.add_argument("--static-weight", type=float, default=None,
                    help="fit(): weight of the static stage in the 'toxic' score")
    ap.add_argument("--C", type=float, default=None, help="fit(): inverse regularisation")
    ap.add_argument("--tag", default="", help="suffix for the results file name")
    ap.add_argument("--ailuminate-fr", action="store_true",
                    help="embedded: only the French AILuminate category test "
                    "(-> harm_eval_embedded_ailuminate_fr.json)")
    ap.add_argument("--ja-heldout", action="store_true",
                    help="embedded: only the Japanese test on Japan AISI's aisev prompts "
                    "(-> harm_eval_embedded_ja_heldout.json)")
    args = ap.parse_args()
    global ZOOM_FROM, STATIC_ONLY
    STATIC_ONLY = args.static_only
    if args.zoom_from is not None:
        ZOOM_FROM = args.zoom_from
    if args.keep is not None:
        FIT_KW["keep"] = args.keep
    if args.static_weight is not None:
        FIT_KW["static_weight"] = {"en": args.static_weight, "ja": args.static_weight}
    if args.C is not None:
        FIT_KW["C"] = args.C
    cfg = policy_harm_config(Path(args.policy))
    POLICY.append(cfg)
    rows = load_all()
    if args.limit:
        rng = np.random.default_rng(0)
        rows = [rows[i] for i in sorted(rng.choice(len(rows), args.limit, replace=False))]
    if args.threshold is not None:
        cfg = cfg.model_copy(update={"threshold": args.threshold, "categories": {},
                                     "flag_threshold": None})
        POLICY[0] = cfg
    th = {c: cfg.rule_for(c)[0] for c in ALL_CATEGORIES} | {"any": cfg.threshold}
    t0 = time.time()
    if args.ailuminate_fr:
        res = {"ailuminate_fr": eval_ailuminate_fr(rows, cfg)}
        args.tag = args.tag or "_ailuminate_fr"
    elif args.ja_heldout:
        res = {"ja_heldout": eval_ja_heldout(rows, cfg)}
        args.tag = args.tag or "_ja_heldout"
    elif args.backend == "embedded":
        res = eval_embedded(rows, th, cascade=args.cascade)
        loso = res.pop("_loso_scores")
        res["threshold_sweep_loso"] = sweep(rows, loso)
    else:
        from guardrail.harm.hf import build_backend

        backend = build_backend(args.backend, args.model)
        backend.load()
        res = eval_external(rows, th, backend)
    res.update({"backend": args.backend, "model": args.model, "policy": _rel(args.policy),
                "thresholds": th, "flag_threshold": cfg.flag_threshold,
                "fit_options": FIT_KW, "zoom_from": ZOOM_FROM,
                "cascade": args.cascade, "static_only": args.static_only,
                "rows": len(rows),
                "seconds": round(time.time() - t0, 1)})
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"harm_eval_{args.backend}{args.tag}.json"
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    print(json.dumps({k: v for k, v in res.items() if k != "threshold_sweep_loso"}, indent=1,
                     ensure_ascii=False)[:6000])
    print("wrote", out)


def sweep(rows: list[Row], scores: list[dict]) -> list[dict]:
    """Pooled LOSO English F1 / Japanese F1 / XSTest-row flag rate at several thresholds."""
    out = []
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
        th = {c: t for c in ALL_CATEGORIES} | {"any": t}
        p = pooled(rows, scores, th)
        xs = [r.source == "xstest" and r.group == "safe_completion" for r in rows]
        xs_any = [any_score(d, th) >= t for d, x in zip(scores, xs, strict=True) if x]
        xs_tox = [d.get(GENERAL, 0.0) >= t for d, x in zip(scores, xs, strict=True) if x]
        out.append({"threshold": t, "en_any_f1": p["en"]["any"]["f1"],
                    "ja_any_f1": p["ja"]["any"]["f1"],
                    "en_toxic_f1": p["en"].get("toxic_language", {}).get("f1"),
                    "ja_toxic_f1": p["ja"].get("toxic_language", {}).get("f1"),
                    "xstest_first_chunk_any": round(float(np.mean(xs_any)), 4) if xs_any else None,
                    "xstest_first_chunk_toxic": round(float(np.mean(xs_tox)), 4)
                    if xs_tox else None})
    return out


if __name__ == "__main__":
    main()
