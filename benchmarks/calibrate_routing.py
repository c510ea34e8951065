"""Calibrate sentence routing's temper (``route_power``) on the validation split (issue 11).

    .venv/bin/python benchmarks/harm_corpus.py        # once: embed the corpus
    .venv/bin/python benchmarks/calibrate_routing.py

With ``route_sentences`` a chunk the static stage settles but one of whose sentences it does
not sends only those sentences to the encoder, and each category keeps the max of the gate's
chunk score and theirs. A sentence scored alone scores higher than inside its chunk (the
reference path's zoom reads sentences only when the whole chunk is doubtful), so untempered it
blocks more ordinary text. ``route_power`` (``p ** route_power`` for a routed sentence's
scores) is chosen here, on **val** only: the smallest value of ``GRID`` at which the routed path

* blocks no more rows of any benign validation source (``harm_tiers.benign_groups``) than the
  shipped whole-chunk path, and
* lets through no more of the reference path's interventions (every chunk through the encoder)
  than ``max(LET_THROUGH, the whole-chunk path's share)``.

Then, at that power, ``route_escalate`` (a routed chunk one of whose sentences scores at
least this untempered is read whole, as on the whole-chunk path): the largest value of
``ESCALATE_GRID`` at which the routed path lets through no more of the reference's
interventions than the whole-chunk path does, with the same benign limit (routing is a cost
saving; it should not cost recall). ``None`` where no escalation is needed.

Writes ``benchmarks/results/harm_routing.json`` (every value of both grids, the choices).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_harm import RESULTS, decide, policy_harm_config  # noqa: E402
from harm_corpus import CachedEncoder  # noqa: E402
from harm_tiers import LET_THROUGH, benign_groups  # noqa: E402
from train_harm import Corpus  # noqa: E402

from guardrail.harm.embedded import DEFAULT_MODEL_DIR, HEADS_FILE, EmbeddedBackend, Heads  # noqa: E402

GRID = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
ESCALATE_GRID = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2)


def main() -> None:
    cfg = policy_harm_config()
    heads = Heads.load(DEFAULT_MODEL_DIR / HEADS_FILE)
    corpus = Corpus(token_layer=heads.meta.get("token_layer", 8))
    val = [c for c in corpus.crows if c.split == "val"]
    groups = benign_groups(val)
    enc = CachedEncoder(corpus)

    def backend(**kw: Any) -> EmbeddedBackend:
        be = EmbeddedBackend(DEFAULT_MODEL_DIR, zoom_from=cfg.zoom_from, encoder=enc,
                             heads=heads, **kw)
        be.load()
        return be

    def run(be: EmbeddedBackend) -> list[str]:
        return [decide(be.predict(list(c.chunks)), cfg, c.chunks)[0] for c in val]

    t0 = time.time()
    ref = run(backend(cascade=False))
    caught = [i for i, d in enumerate(ref) if d != "allow"]

    def summary(got: list[str], be: EmbeddedBackend) -> dict[str, Any]:
        return {"blocked": {g: sum(got[i] == "block" for i in idx)
                            for g, idx in sorted(groups.items())},
                "let_through": round(sum(got[i] == "allow" for i in caught)
                                     / max(len(caught), 1), 4),
                "differing_from_reference": sum(a != b for a, b in zip(got, ref, strict=True)),
                "encoder_texts": be.stats["chunks"] - be.stats["settled"]
                + be.stats["routed_sentences"] - be.stats["routed"] + be.stats["escalated"],
                "stats": dict(be.stats)}

    whole_be = backend(cascade=True, route_sentences=False)
    whole = summary(run(whole_be), whole_be)
    print("whole chunks", whole, file=sys.stderr)
    grid: dict[str, Any] = {}
    chosen = None
    for g in GRID:
        be = backend(cascade=True, route_sentences=True, route_power=g)
        s = summary(run(be), be)
        enc.save()
        s["ok_benign"] = all(s["blocked"][k] <= whole["blocked"][k] for k in groups)
        s["ok_let_through"] = s["let_through"] <= max(LET_THROUGH, whole["let_through"])
        grid[str(g)] = s
        print(g, s, file=sys.stderr)
        if chosen is None and s["ok_benign"] and s["ok_let_through"]:
            chosen = g
    power = chosen if chosen is not None else GRID[-1]
    esc_grid: dict[str, Any] = {}
    escalate = None
    if grid[str(power)]["let_through"] > whole["let_through"]:
        for e in ESCALATE_GRID:
            be = backend(cascade=True, route_sentences=True, route_power=power,
                         route_escalate=e)
            s = summary(run(be), be)
            s["ok_benign"] = all(s["blocked"][k] <= whole["blocked"][k] for k in groups)
            s["ok_let_through"] = s["let_through"] <= whole["let_through"]
            esc_grid[str(e)] = s
            print("escalate", e, s, file=sys.stderr)
            if s["ok_benign"] and s["ok_let_through"]:
                escalate = e
                break
        enc.save()
    res = {"split": "val", "rows": len(val), "reference_interventions": len(caught),
           "benign_rows": {k: len(v) for k, v in sorted(groups.items())},
           "whole_chunks": whole, "route_power": grid, "chosen": chosen,
           "route_escalate": esc_grid, "chosen_escalate": escalate,
           "seconds": round(time.time() - t0, 1)}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "harm_routing.json"
    out.write_text(json.dumps(res, indent=1, ensure_ascii=False))
    print("chosen route_power", chosen, "route_escalate", escalate, "wrote", out)


if __name__ == "__main__":
    main()
