"""Loaders for the labelled harm data under ``GUARDRAIL_EVAL_DATA`` (training and evaluation).

Each source is mapped onto our taxonomy (:mod:`guardrail.harm.taxonomy`). A row carries the
categories it is positive for; ``exclusive`` says the source gave the row one category out of a
full hazard taxonomy, so the row is a *negative* for the other categories (otherwise they are
unknown and the row is left out of those heads). Used by ``benchmarks/train_harm.py`` and
``benchmarks/eval_harm.py``; the data is read by path and never copied into the repository.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from guardrail.harm.taxonomy import CATEGORIES

# sources whose positives are abusive language (not requests or instructions)
TOXIC_LANGUAGE_SOURCES = frozenset({"davidson", "ethos", "convabuse", "diasafety", "ja_toxic",
                                    "stormfront", "toxigen", "wiki_toxicity"})
# sources of LLM responses judged harmful as responses (the `harmful_assistance` head)
RESPONSE_SOURCES = frozenset({"jbb", "harmbench", "dices"})


@dataclass(frozen=True)
class Row:
    text: str
    lang: str
    source: str
    harmful: int
    cats: frozenset[str] = field(default_factory=frozenset)
    exclusive: bool = False
    kind: str = "text"  # text | prompt | llm_output
    group: str = ""  # finer grouping inside a source (e.g. xstest safe/unsafe prompt)

    def toxic(self) -> int | None:
        """Toxic *language* (the ``toxic`` head): abuse, insults, hate speech, obscenity in
        the text itself. Requests for harmful help (prompts) and harmful instructions other
        than harassment are unknown here: they train the category heads instead."""
        if not self.harmful:
            return 0
        if self.source in TOXIC_LANGUAGE_SOURCES:
            return 1
        if self.source in ("xsafety", "jbb", "harmbench") and "harassment" in self.cats:
            return None if self.kind == "prompt" and self.source != "xsafety" else 1
        return None

    def label(self, category: str) -> int | None:
        """1/0 for ``category``, or None when the source does not say."""
        if category == "any":
            return self.harmful
        if not self.harmful:
            return 0
        if category == "harmful_assistance":
            # output that carries out a harmful request; requests themselves are unknown
            if self.kind == "llm_output" and self.source in RESPONSE_SOURCES:
                return 1
            return None
        if category in self.cats:
            return 1
        return 0 if self.exclusive else None


def data_root() -> Path:
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "eval"
    return Path(os.environ.get("GUARDRAIL_EVAL_DATA", str(default))).resolve()


def _csv(path: Path, **kw: str) -> Iterator[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        yield from csv.DictReader(fh, delimiter=kw.get("delimiter", ","))


def _r(source: str, text: str, harmful: int, cats: set[str] | None = None, **kw: object) -> Row:
    lang = str(kw.pop("lang", "en"))
    assert not cats or cats <= set(CATEGORIES), cats
    return Row(text.strip(), lang, source, harmful, frozenset(cats or ()), **kw)  # type: ignore[arg-type]


def davidson(root: Path, rng: random.Random, n: int = 600) -> list[Row]:
    by: dict[str, list[str]] = {"0": [], "1": [], "2": []}
    for d in _csv(root / "davidson_hate" / "labeled_data.csv"):
        by[d["class"]].append(d["tweet"])
    out = [_r("davidson", t, 1, {"hate"}) for t in rng.sample(by["0"], n)]
    out += [_r("davidson", t, 1, {"profanity"}) for t in rng.sample(by["1"], n)]
    out += [_r("davidson", t, 0) for t in rng.sample(by["2"], n)]
    return out


def ethos(root: Path, rng: random.Random) -> list[Row]:
    violent = {
        d["comment"]
        for d in _csv(root / "ethos_hate" / "Ethos_Dataset_Multi_Label.csv", delimiter=";")
        if float(d["violence"]) >= 0.5
    }
    out = []
    for d in _csv(root / "ethos_hate" / "Ethos_Dataset_Binary.csv", delimiter=";"):
        hate = float(d["isHate"]) >= 0.5
        if not hate and float(d["isHate"]) > 0.2:
            continue  # ambiguous
        cats = {"hate"} | ({"violence"} if d["comment"] in violent else set())
        out.append(_r("ethos", d["comment"], int(hate), cats if hate else None))
    return out


def convabuse(root: Path, rng: random.Random, n_neg: int = 700) -> list[Row]:
    pos, neg = [], []
    for f in sorted((root / "convabuse").glob("*.csv")):
        for d in _csv(f):
            scores, types = [], set()
            for a in range(1, 9):
                levels = [k for k in ("1", "0", "-1", "-2", "-3")
                          if d.get(f"Annotator{a}_is_abuse.{k}") == "1"]
                if not levels:
                    continue
                scores.append(int(levels[0]))
                for t in ("ableist", "homophobic", "racist", "sexist", "sex_harassment",
                          "transphobic", "intellectual"):
                    if d.get(f"Annotator{a}_{t}") == "1":
                        types.add(t)
            if not scores or len(d["user"]) < 12:
                continue
            mean = sum(scores) / len(scores)
            if mean <= -1.0:
                cats = {"harassment"}
                if "sex_harassment" in types:
                    cats.add("sexual")
                if types & {"homophobic", "racist", "sexist", "transphobic", "ableist"}:
                    cats.add("hate")
                pos.append(_r("convabuse", d["user"], 1, cats))
            elif mean >= 0.5:
                neg.append(_r("convabuse", d["user"], 0))
    return pos + rng.sample(neg, min(n_neg, len(neg)))


def diasafety(root: Path, rng: random.Random, n: int = 400, n_safe: int = 1600) -> list[Row]:
    rows = []
    for split in ("train", "val", "test"):
        rows += json.load(open(root / "diasafety" / f"{split}.json", encoding="utf-8"))
    off = [d for d in rows if d["category"] == "Offending User" and d["label"] == "Unsafe"]
    safe = [d for d in rows if d["label"] == "Safe"]
    out = [_r("diasafety", d["response"], 1, {"harassment"}, kind="llm_output")
           for d in rng.sample(off, min(n, len(off)))]
    out += [_r("diasafety", d["response"], 0, kind="llm_output") for d in rng.sample(safe, n_safe)]
    return out


AILUMINATE: dict[str, set[str]] = {
    "vcr": {"violence"}, "src": {"sexual"}, "cse": {"sexual", "sexual_minors"},
    "sxc_prn": {"sexual"}, "ssh": {"self_harm"}, "hte": {"hate"}, "ncr": {"illicit"},
    "iwp": {"illicit"}}


def ailuminate(root: Path, rng: random.Random) -> list[Row]:
    f = root / "ailuminate" / "airr_official_1.0_demo_en_us_prompt_set_release.csv"
    return [_r("ailuminate", d["prompt_text"], 1, AILUMINATE[d["hazard"]], exclusive=True,
               kind="prompt") for d in _csv(f) if d["hazard"] in AILUMINATE]


def ailuminate_fr(root: Path) -> list[Row]:
    """AILuminate's French prompt set (written separately from the English one, not a
    translation): every hazard, mapped where our taxonomy has the category. Evaluation only
    (``eval_harm.py --ailuminate-fr``): never in ``load_all``."""
    f = root / "ailuminate" / "airr_official_1.0_demo_fr_fr_prompt_set_release.csv"
    return [_r("ailuminate_fr", d["prompt_text"], 1,
               AILUMINATE.get(d["hazard"], set()),
               exclusive=True, kind="prompt", lang="fr", group=d["hazard"]) for d in _csv(f)]


def jaisi(root: Path) -> list[Row]:
    """Japan AISI's aisev evaluation prompts (toxicity and fairness requirements; 228 Japanese
    prompts written to elicit harmful or unfair answers). Evaluation only (``eval_harm.py
    --ja-heldout``): never in ``load_all``; ``group`` = the file's theme."""
    out = []
    for name, group in (("01_aisi_toxic_v0.1.csv", "toxic"),
                        ("03_aisi_fairness_v0.1.csv", "fairness")):
        out += [_r("jaisi", d["text"], 1, set(), exclusive=False, kind="prompt", lang="ja",
                   group=group) for d in _csv(root / "jaisi_aisev" / name) if d["text"]]
    return out


def ja_benign_unused(root: Path, used: set[str], n: int = 400, seed: int = 0) -> list[Row]:
    """Benign Japanese captions and Wikipedia sentences that ``ja_benign`` did not sample."""
    rng = random.Random(f"unused-{seed}")
    rows = ja_benign(root, rng, n=n * 3)
    fresh = [r for r in rows if r.text not in used]
    caps = [r for r in fresh if r.source == "ja_captions"][:n]
    wiki = [r for r in fresh if r.source == "ja_wiki"][:n]
    return caps + wiki


STRONGREJECT = {"Violence": "violence", "Sexual content": "sexual",
                "Non-violent crimes": "illicit", "Illegal goods and services": "illicit",
                "Hate, harassment and discrimination": "hate"}


def strongreject(root: Path, rng: random.Random) -> list[Row]:
    f = root / "strongreject" / "strongreject_dataset.csv"
    return [_r("strongreject", d["forbidden_prompt"], 1, {STRONGREJECT[d["category"]]},
               exclusive=True, kind="prompt") for d in _csv(f) if d["category"] in STRONGREJECT]


HARMBENCH = {"cybercrime_intrusion": "illicit", "illegal": "illicit",
             "chemical_biological": "illicit", "harassment_bullying": "harassment"}


def harmbench(root: Path, rng: random.Random) -> list[Row]:
    targets = json.load(open(root / "harmbench" / "harmbench_targets_text.json", encoding="utf-8"))
    out = []
    for d in _csv(root / "harmbench" / "harmbench_behaviors_text_all.csv"):
        cat = HARMBENCH.get(d["SemanticCategory"])
        if cat is None:
            continue
        out.append(_r("harmbench", d["Behavior"], 1, {cat}, exclusive=True, kind="prompt"))
        if d["BehaviorID"] in targets:
            out.append(_r("harmbench", targets[d["BehaviorID"]], 1, {cat}, exclusive=True,
                          kind="llm_output"))
    return out


JBB = {"Harassment/Discrimination": "harassment", "Physical harm": "violence",
       "Malware/Hacking": "illicit", "Fraud/Deception": "illicit", "Economic harm": "illicit",
       "Sexual/Adult content": "sexual"}


def jbb(root: Path, rng: random.Random) -> list[Row]:
    out, seen = [], set()
    for f in sorted(glob.glob(str(root / "jbb_artifacts" / "*.json"))):
        for j in json.load(open(f, encoding="utf-8"))["jailbreaks"]:
            resp = j.get("response")
            if not resp or resp in seen or len(resp) < 20:
                continue
            seen.add(resp)
            if not j["jailbroken"]:
                out.append(_r("jbb", resp, 0, kind="llm_output"))  # a refusal
            elif j["category"] in JBB:
                out.append(_r("jbb", resp, 1, {JBB[j["category"]]}, exclusive=True,
                              kind="llm_output"))
    return out


def xstest(root: Path, rng: random.Random) -> list[Row]:
    """Safe prompts and every model's completions to them (negatives: benign LLM output).

    Completions to the unsafe contrast prompts are left out: XSTest does not label whether
    they are harmful, only whether the model complied."""
    safe = {d["prompt"]: d["type"] for d in _csv(root / "xstest" / "xstest_prompts.csv")
            if d["label"] == "safe"}
    # group = the prompt: a prompt and its five completions share a split
    out = [_r("xstest", p, 0, kind="prompt", group=p) for p in safe]
    for f in sorted((root / "xstest").glob("xstest_v2_completions_*.csv")):
        for d in _csv(f):
            if d["prompt"] in safe and d["completion"].strip():
                out.append(_r("xstest", d["completion"], 0, kind="llm_output",
                              group=d["prompt"]))
    return out


XSAFETY = {"Insult": "harassment", "Crimes_And_Illegal_Activities": "illicit",
           "Unfairness_And_Discrimination": "hate"}


# Benign conversational rows (questions on ethics, statements of low mood): not toxic language,
# the conversational Japanese the captions and Wikipedia negatives lack.
XSAFETY_BENIGN = ("Ethics_And_Morality", "Mental_Health")


def xsafety(root: Path, rng: random.Random, n: int = 200) -> list[Row]:
    out = []
    for lang in ("ja", "en"):
        for name in (*XSAFETY, *XSAFETY_BENIGN):
            files = glob.glob(str(root / "xsafety" / lang / f"{name}*.csv"))
            lines = [ln.strip() for ln in open(files[0], encoding="utf-8-sig") if ln.strip()]
            for k, t in enumerate(lines[:n]):  # same first n in both languages: parallel
                g = f"{name}:{k}"  # a row and its translation share a group (and a split)
                if name in XSAFETY:
                    out.append(_r("xsafety", t.strip('"'), 1, {XSAFETY[name]}, lang=lang,
                                  kind="prompt", group=g))
                else:
                    out.append(_r("xsafety", t.strip('"'), 0, lang=lang, group=g))
    return out


JA_TOXIC = {"卑語": "profanity", "差別": "hate", "迷惑行為": "harassment", "猥褻": "sexual",
            "違法行為": "illicit", "偏向表現": "hate"}


def ja_toxic(root: Path, rng: random.Random) -> list[Row]:
    out = []
    for d in _csv(root / "ja_toxic_inspection" / "subset.csv"):
        votes = {k: int(d[k]) for k in ("Not Toxic", "Hard to Say", "Toxic", "Very Toxic")}
        toxic = votes["Toxic"] + votes["Very Toxic"]
        if toxic > votes["Not Toxic"]:
            cats = {c for jp, c in JA_TOXIC.items() if int(d[f"category_{jp}"]) >= 2}
            out.append(_r("ja_toxic", d["text"], 1, cats, lang="ja"))
        elif votes["Not Toxic"] > toxic + votes["Hard to Say"]:
            out.append(_r("ja_toxic", d["text"], 0, lang="ja"))
    return out


def ja_benign(root: Path, rng: random.Random, n: int = 400) -> list[Row]:
    """Benign Japanese text: JSTS image captions and Wikipedia sentences (NER corpus)."""
    caps = []
    with open(root / "ja_jsts_jglue" / "valid-v1.3.json", encoding="utf-8") as fh:
        for line in fh:
            caps.append(json.loads(line)["sentence1"])
    wiki = [d["text"] for d in json.load(open(root / "ja_ner_stockmark" / "ner.json",
                                                encoding="utf-8"))]
    out = [_r("ja_captions", t, 0, lang="ja") for t in rng.sample(sorted(set(caps)), n)]
    out += [_r("ja_wiki", t, 0, lang="ja") for t in rng.sample(wiki, n)]
    return out


LOADERS = {f.__name__: f for f in (davidson, ethos, convabuse, diasafety, ailuminate,
                                     strongreject, harmbench, jbb, xstest, xsafety, ja_toxic,
                                     ja_benign)}


def load_all(seed: int = 0, root: Path | None = None) -> list[Row]:
    root = root or data_root()
    rows: list[Row] = []
    for name, fn in LOADERS.items():
        rows += [r for r in fn(root, random.Random(f"{seed}-{name}")) if r.text]
    return rows
