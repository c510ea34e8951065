"""Calibration of the embedded harm model on the validation split (used by train_harm.py).

Chosen here, never on the test split or the out-of-source sets:

* **thresholds**, per language and category, jointly (``greedy``): starting from 0.99, the
  threshold whose lowering catches the most harmful validation rows is lowered, as long as every
  benign validation source (literature, encyclopaedic text, chat, service dialogue, short
  sentences, LLM answers, medical answers, XSTest safe completions, Aegis safe responses)
  keeps at most ``BLOCK_BUDGET`` of its rows blocked by **any**
  category (``FLAG_BUDGET`` for flag-or-block), never below ``FLOOR``. Rows are scored on the
  reference path with sentence zoom, the max over their chunks, as the scanner decides. Which
  categories block and which flag is ``BLOCK`` / ``FLAG`` (issue 11:
  profanity, adult sexual content and depicted violence are flagged; abuse aimed at people,
  threats, sexual content with minors, self-harm, harmful assistance are blocked; abusive
  language in general is flagged, and blocked when severe);
* **cascade gates**, per language: stage-1 gates on ``toxic`` and ``any`` such that at most
  ``LET_THROUGH`` of the validation chunks the encoder alone would act on (any tier of those
  thresholds, flags included) fall below both gates (each gate at that quantile of its head's
  caught chunks, then both lowered together until the pair lets through no more than
  ``LET_THROUGH``, rounded down to whole chunks). Both stage-1 models (linear heads, gate
  MLP) are calibrated; the one that settles more benign chunks is kept for the language.

``policy_yaml`` renders the thresholds as the shipped policy's harm rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BLOCK_BUDGET = 0.002  # validation: at most 0.2% of a benign source's rows blocked (any category)
PROMPT_WEIGHT = 0.25
FLAG_BUDGET = 0.01
FLOOR = 0.6
LET_THROUGH = 0.005
MIN_POSITIVES = 10  # validation positives a language needs for its own threshold
GRID = np.round(np.arange(0.50, 0.995, 0.01), 2)
BLOCK = ("harassment", "hate", "threat", "sexual_minors", "self_harm", "harmful_assistance",
         "illicit", "toxic")
FLAG = ("profanity", "sexual", "violence", "toxic")  # toxic: a flag tier below its block one
ORDINARY_SOURCES = {"en_gutenberg", "en_medquad", "tatoeba_en", "ja_aozora", "ja_persona_chat",
                    "ja_asdc", "ja_wikipedia", "ja_tatoeba", "ja_vicuna_answers",
                    "ja_llm_answers"}
# safe LLM output on sensitive topics: XSTest's human-labelled safe completions, Aegis' safe
# responses. JailbreakBench's "not jailbroken" responses are judged by an LLM and many comply
# in part: they are negatives in training and in the reported F1, not a calibration budget.
BENIGN_OUTPUT_SOURCES = {"xstest", "aegis"}


def benign_groups(crows: list[Any]) -> dict[str, list[int]]:
    """Row indices of the benign sources a threshold must pass, by ``source/lang``."""
    out: dict[str, list[int]] = {}
    for i, c in enumerate(crows):
        r = c.row
        if r.harmful:
            continue
        if r.source in ORDINARY_SOURCES or (r.source in BENIGN_OUTPUT_SOURCES
                                            and r.kind == "llm_output"):
            out.setdefault(f"{r.source}/{r.lang}", []).append(i)
    return out


def row_scores(heads: Any, corpus: Any, crows: list[Any]) -> tuple[
        list[dict[str, float]], np.ndarray, np.ndarray | None, list[int]]:
    """Stage-2 scores per chunk, stage-1 linear and gate-MLP probabilities per chunk, and
    each chunk's row."""
    texts, owner = [], []
    for i, c in enumerate(crows):
        texts += list(c.chunks)
        owner += [i] * len(c.chunks)
    s2 = heads.stage2(texts, corpus.X(texts, heads.layers))
    langs = [crows[i].row.lang for i in owner]
    p1, pg = heads.stage1_gate(texts, langs)
    return s2, p1, pg, owner


def path_scores(heads: Any, corpus: Any, crows: list[Any], zoom_from: float) -> list[dict]:
    """Per row, each category's max over its chunks on the reference path (every chunk
    through the encoder, sentence zoom on), as the scanner scores an output."""
    from harm_corpus import CachedEncoder

    from guardrail.harm.embedded import EmbeddedBackend

    enc = CachedEncoder(corpus)
    be = EmbeddedBackend(cascade=False, zoom_from=zoom_from, encoder=enc, heads=heads)
    be.load()
    out = []
    for c in crows:
        best: dict[str, float] = {}
        for d in be.predict(list(c.chunks)):
            for k, v in d.items():
                best[k] = max(best.get(k, 0.0), v)
        out.append(best)
    enc.save()
    return out


def greedy(best: list[dict], crows: list[Any], groups: dict[str, list[int]],
           cats: tuple[str, ...], budget: float, lang: str,
           counted: dict[str, float] | None = None) -> dict[str, float]:
    """Lower the thresholds of ``cats`` from 0.99, each step the category whose next lower
    value (skipping plateaus) adds the most harmful rows of ``lang`` reaching a threshold,
    while every
    benign group keeps at most ``budget`` of its rows reaching any threshold of ``cats`` (or
    of ``counted``, held fixed)."""
    S = {c: np.array([b.get(c, 0.0) for b in best]) for c in cats}
    # outputs and abusive text count fully; requests for harm (prompts) a quarter: the
    # scanner reads outputs, and prompts are many and easy, so they would otherwise pull the
    # request-only categories down to where ordinary short sentences start to reach them
    weight = np.array([(PROMPT_WEIGHT if c.row.kind == "prompt" else 1.0)
                       if c.row.harmful and c.row.lang == lang else 0.0 for c in crows])
    th = {c: 0.99 for c in cats}
    fixed = np.zeros(len(crows), bool)
    for c, t in (counted or {}).items():
        fixed |= np.array([b.get(c, 0.0) for b in best]) >= t

    def ok(h: np.ndarray) -> bool:
        # at most floor(budget * n) rows of every group: a group too small to show the budget
        # allows none
        return all(int(h[idx].sum()) <= int(budget * len(idx)) for idx in groups.values())

    cur = fixed.copy()
    for c in cats:
        cur |= S[c] >= th[c]
    while True:
        move: tuple[float, str, float] | None = None
        for c in cats:
            for t in np.round(np.arange(th[c] - 0.01, FLOOR - 1e-9, -0.01), 2):
                h = cur | (S[c] >= t)
                if not ok(h):
                    break
                gain = float(weight[h & ~cur].sum())
                if gain > 0:
                    rate = gain / round((th[c] - t) / 0.01)  # harmful rows per 0.01 lowered
                    if move is None or rate > move[0]:
                        move = (rate, c, float(t))
                    break
        if move is None:
            return th
        _, c, t = move
        th[c] = t
        cur |= S[c] >= t


def lowest_tier(th: dict[str, dict[str, float]]) -> dict[str, float]:
    return {c: min(v.values()) for c, v in th.items()}


def calibrate(heads: Any, corpus: Any, val: list[Any], zoom_from: float = 0.25) -> tuple[
        dict[str, dict[str, float]], dict[str, str], dict[str, Any]]:
    s2, p1, pg, owner = row_scores(heads, corpus, val)
    best = path_scores(heads, corpus, val, zoom_from)
    groups = benign_groups(val)
    th: dict[str, dict[str, dict[str, float]]] = {}
    for lang in ("en", "ja"):
        g = {k: v for k, v in groups.items() if k.endswith("/" + lang)}
        block = greedy(best, val, g, BLOCK, BLOCK_BUDGET, lang)
        flag = greedy(best, val, g, FLAG, FLAG_BUDGET, lang, counted=block)
        th[lang] = {c: {"block": t} for c, t in block.items()}
        for c, t in flag.items():
            if c not in th[lang] or t < th[lang][c]["block"]:
                th[lang].setdefault(c, {})["flag"] = t
    # a category with (almost) no validation positives in a language keeps the English rule
    # there (the encoder is multilingual) instead of an untested 0.99
    for c in list(th["ja"]):
        pos = sum(1 for r in val if r.row.lang == "ja"
                  and (r.row.toxic() if c == "toxic" else r.row.label(c)) == 1)
        if pos < MIN_POSITIVES:
            th["ja"][c] = dict(th["en"][c])
            th["ja"][c]["inherited_from_en"] = 1.0
    gate, gate_model, report = calibrate_gates(heads, val, th, (s2, p1, pg, owner))
    return gate, gate_model, {"thresholds": th, "cascade_on_val": report, "gate": gate,
                              "gate_model": gate_model, "block_budget": BLOCK_BUDGET,
                              "flag_budget": FLAG_BUDGET, "floor": FLOOR,
                              "let_through_target": LET_THROUGH}


def calibrate_gates(heads: Any, val: list[Any], th: dict[str, dict[str, dict[str, float]]],
                    scored: tuple[list[dict[str, float]], np.ndarray, np.ndarray | None,
                                  list[int]],
                    ) -> tuple[dict[str, dict[str, float]], dict[str, str], dict[str, Any]]:
    """The cascade's gates per language for thresholds ``th``, from ``row_scores`` of the
    validation split: each stage-1 model (linear heads, the learned gate) calibrated to let
    through at most ``LET_THROUGH`` of the chunks the encoder acts on; the one settling more
    benign chunks is kept."""
    s2, p1, pg, owner = scored
    labels = heads.labels
    langs = [val[i].row.lang for i in owner]
    benign_chunk = np.array([not val[i].row.harmful for i in owner])
    gate: dict[str, dict[str, float]] = {}
    gate_model: dict[str, str] = {}
    report: dict[str, Any] = {}
    mlp_labels = heads.static.gate_mlp.labels if heads.static.gate_mlp is not None else []
    for lang in ("en", "ja"):
        low = lowest_tier(th[lang])
        sel = np.array([lg == lang for lg in langs])
        caught_tox = sel & np.array([d["toxic"] >= low["toxic"] for d in s2])
        caught_any = sel & np.array([any(d[c] >= low[c] for c in low if c != "toxic")
                                     for d in s2])
        caught = caught_tox | caught_any
        options: dict[str, tuple[np.ndarray, np.ndarray]] = {
            "linear": (p1[:, labels.index("toxic")], p1[:, labels.index("any")])}
        if pg is not None:
            options["mlp"] = (pg[:, mlp_labels.index("toxic")], pg[:, mlp_labels.index("any")])
        best: tuple[float, str, dict[str, float], dict[str, Any]] | None = None
        for name, (pt, pa) in options.items():
            # per gated head, over the chunks caught through it (or, with too few of those,
            # over every caught chunk of the language)
            gt = float(np.quantile(pt[caught_tox if caught_tox.sum() >= 20 else caught],
                                   LET_THROUGH))
            ga = float(np.quantile(pa[caught_any if caught_any.sum() >= 20 else caught],
                                   LET_THROUGH))
            # the two quantiles are per head; together (and with few caught chunks: Japanese
            # has ~100 on val) they can settle more than LET_THROUGH of the caught chunks, so
            # both gates are lowered together until the budget holds
            allowed = int(LET_THROUGH * caught.sum())
            tightened = 0
            settled = sel & (pt < gt) & (pa < ga)
            while (settled & caught).sum() > allowed and tightened < 400:
                gt, ga = gt * 0.97, ga * 0.97
                tightened += 1
                settled = sel & (pt < gt) & (pa < ga)
            share = float(settled[sel & benign_chunk].mean())
            stats = {"caught_by_encoder": int(caught.sum()),
                     "settled_of_those": int((settled & caught).sum()),
                     "let_through": round(float((settled & caught).sum() / max(caught.sum(), 1)),
                                          4),
                     "benign_chunks_settled": round(share, 3),
                     "gates_lowered_3pct_times": tightened,
                     "all_chunks_settled": round(float(settled[sel].mean()), 3)}
            report[f"{lang}/{name}"] = stats
            if best is None or share > best[0]:
                best = (share, name, {"toxic": gt, "any": ga}, stats)
        assert best is not None
        gate[lang], gate_model[lang] = best[2], best[1]
    return gate, gate_model, report


def policy_yaml(th: dict[str, dict[str, dict[str, float]]], indent: str = "    ") -> str:
    """The harm scanner's ``categories`` (English values) and ``languages.ja`` overrides."""
    def rule(v: dict[str, float]) -> str:
        if "block" in v:
            s = f"threshold: {v['block']:.2f}, action: block"
            return s + (f", flag_threshold: {v['flag']:.2f}" if "flag" in v else "")
        return f"threshold: {v['flag']:.2f}, action: flag"

    lines = [f"{indent}categories:"]
    for c in sorted(th["en"]):
        lines.append(f"{indent}  {c}: {{{rule(th['en'][c])}}}")
    lines.append(f"{indent}languages:               # chunks detected as Japanese; the other "
                 "categories")
    lines.append(f"{indent}  ja:                     # keep the rules above (too few Japanese "
                 "positives to set their own)")
    for c in sorted(th["ja"]):
        if "inherited_from_en" not in th["ja"][c]:
            lines.append(f"{indent}    {c}: {{{rule(th['ja'][c])}}}")
    return "\n".join(lines)
