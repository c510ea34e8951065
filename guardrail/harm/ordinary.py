"""Ordinary text that must pass the harm scanner, and the newer labelled harm sources.

Ordinary text (literature, news-like encyclopaedic text, casual chat, service dialogue, LLM
answers, medical Q&A) is what users meet: the scanner must not block it. Each loader yields
:class:`~guardrail.harm.datasets.Row` with ``harmful=0`` and ``group`` = the unit the split is
drawn on (a book, an author, a dialogue, a model), so that a passage in the test split never
shares its book or author with a training passage (``split_of``).

The labelled sources added for issue 11: DICES (chatbot turns rated unsafe by many raters),
Aegis 2.0 (unsafe prompts by category, with responses judged safe), Stormfront (hate
sentences), ToxiGen seed statements (implicit hate vs neutral mentions of groups) and the
Wikipedia talk-page toxicity test set.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import random
import re
from pathlib import Path

from guardrail.harm.datasets import Row, _r

SPLITS = ("train", "val", "test")


def split_of(key: str, weights: tuple[int, int, int] = (60, 20, 20)) -> str:
    """Deterministic split of a grouping key (sha256), so reruns and machines agree."""
    h = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % sum(weights)
    if h < weights[0]:
        return "train"
    return "val" if h < weights[0] + weights[1] else "test"


def _passages(text: str, rng: random.Random, n: int, size: int = 600,
              min_chars: int = 120) -> list[str]:
    """``n`` passages of about ``size`` characters cut at paragraph/sentence boundaries from
    random offsets of a long text."""
    out: list[str] = []
    if len(text) < min_chars:
        return out
    for _ in range(n * 3):
        if len(out) >= n:
            break
        a = rng.randrange(0, max(1, len(text) - size))
        # start after the next sentence end so passages begin at a sentence
        m = re.search(r"[.!?。！？」\n]\s*", text[a:a + 200])
        a = a + m.end() if m else a
        chunk = text[a:a + size]
        ends = [m.end() for m in re.finditer(r"[.!?。！？」](\s|$)", chunk)]
        if ends and ends[-1] > min_chars:
            chunk = chunk[:ends[-1]]
        chunk = re.sub(r"[ \t]*\n[ \t]*(?!\n)", " ", chunk).strip()
        if len(chunk) >= min_chars:
            out.append(chunk)
    return out


def gutenberg(root: Path, rng: random.Random, per_book: int = 60) -> list[Row]:
    out = []
    for f in sorted((root / "en_gutenberg_classics" / "books").glob("*.txt")):
        text = f.read_text(encoding="utf-8", errors="replace")
        s, e = text.find("*** START"), text.find("*** END")
        text = text[text.find("\n", s) + 1 if s >= 0 else 0: e if e > 0 else None]
        out += [_r("en_gutenberg", p, 0, kind="literature", group=f.stem)
                for p in _passages(text, rng, per_book)]
    return out


def medquad(root: Path, rng: random.Random, n: int = 1400) -> list[Row]:
    rows = [json.loads(ln) for ln in open(root / "en_medquad" / "medquad_qa.jsonl",
                                           encoding="utf-8")]
    rows = [d for d in rows if d.get("answer") and len(d["answer"]) > 80]
    out = []
    for d in rng.sample(rows, min(n, len(rows))):
        ans = re.sub(r"\s+", " ", d["answer"]).strip()[:1200]
        out.append(_r("en_medquad", ans, 0, kind="llm_output", group=d["focus"] or d["doc"]))
    return out


def tatoeba(root: Path, rng: random.Random, n: int = 2500) -> list[Row]:
    pairs = [ln.rstrip("\n").split("\t") for ln in open(root / "ja_tatoeba_en_ja_pairs" /
                                                         "jpn.txt", encoding="utf-8")]
    pairs = [p for p in pairs if len(p) >= 2 and len(p[0]) >= 15]
    out = []
    for en, ja, *_ in rng.sample(pairs, min(n, len(pairs))):
        out.append(_r("tatoeba_en", en, 0, kind="short", group=en))
        out.append(_r("ja_tatoeba", ja, 0, lang="ja", kind="short", group=en))
    return out


def aozora(root: Path, rng: random.Random, per_author: int = 35) -> list[Row]:
    by_author: dict[str, list[str]] = {}
    for ln in open(root / "ja_aozora_pd" / "aozora_pd_works.jsonl", encoding="utf-8"):
        d = json.loads(ln)
        by_author.setdefault(d["author"], []).append(d["text"])
    out = []
    for author, works in sorted(by_author.items()):
        for _ in range(per_author):
            w = rng.choice(works)
            w = re.sub(r"《[^》]*》|［＃[^］]*］|｜", "", w)  # ruby and editor notes
            out += [_r("ja_aozora", p, 0, lang="ja", kind="literature", group=author)
                    for p in _passages(w, rng, 1, size=300, min_chars=60)]
    return out


def persona_chat(root: Path, rng: random.Random, n: int = 3000) -> list[Row]:
    lines = open(root / "ja_real_persona_chat" / "dialogues_all_text.jsonl",
                 encoding="utf-8").readlines()
    out = []
    for ln in rng.sample(lines, min(n, len(lines))):
        d = json.loads(ln)
        utts = [u["text"] for u in d["utterances"] if u["text"].strip()]
        if not utts:
            continue
        if rng.random() < 0.5:  # a single message, as a chat app sends it
            text = rng.choice(utts)
        else:
            a = rng.randrange(0, max(1, len(utts) - 4))
            text = "\n".join(utts[a:a + rng.randint(2, 6)])
        out.append(_r("ja_persona_chat", text, 0, lang="ja", kind="chat",
                      group=str(d["dialogue_id"])))
    return out


def asdc(root: Path, rng: random.Random, n: int = 2400) -> list[Row]:
    files = sorted((root / "ja_asdc_megagon" / "main_dialog_text").glob("*.tsv"))
    out = []
    for f in rng.sample(files, min(n // 4, len(files))):
        utts = [ln.split("\t", 1)[1].replace("│", "").replace("▁", "").strip()
                for ln in open(f, encoding="utf-8") if "\t" in ln]
        for u in rng.sample(utts, min(4, len(utts))):
            if len(u) >= 8:
                out.append(_r("ja_asdc", u, 0, lang="ja", kind="chat", group=f.stem))
    return out


def jsquad(root: Path, rng: random.Random, n: int = 1500) -> list[Row]:
    rows = [json.loads(ln) for ln in open(root / "ja_wikipedia_jsquad_contexts" /
                                           "jsquad_wikipedia_paragraphs.jsonl", encoding="utf-8")]
    out = []
    for d in rng.sample(rows, min(n, len(rows))):
        text = d["context"].split("[SEP]", 1)[-1].strip()[:800]
        out.append(_r("ja_wikipedia", text, 0, lang="ja", kind="encyclopaedic", group=d["title"]))
    return out


def _answers(path: str) -> list[str]:
    out = []
    for ln in open(path, encoding="utf-8"):
        d = json.loads(ln)
        if "choices" in d:
            out += [t for c in d["choices"] for t in c.get("turns", []) if isinstance(t, str)]
        elif isinstance(d.get("text"), str):
            out.append(d["text"])
    return [t.strip() for t in out if t and len(t.strip()) >= 20]


def ja_llm_answers(root: Path, rng: random.Random, n: int = 2400) -> list[Row]:
    """Japanese LLM answers: ja-vicuna-qa (7 models) and rakuda / Japanese MT-Bench."""
    out = []
    for src, pattern in (("ja_vicuna_answers", "ja_vicuna_qa_answers/*.jsonl"),
                         ("ja_llm_answers", "ja_llm_answers_rakuda_jmtbench/*/*.jsonl")):
        rows = []
        for f in sorted(glob.glob(str(root / pattern))):
            if Path(f).name == "question.jsonl":
                continue
            rows += [(Path(f).stem, t) for t in _answers(f)]
        for model, t in rng.sample(rows, min(n // 2, len(rows))):
            out.append(_r(src, t[:1200], 0, lang="ja", kind="llm_output",
                          group=f"{model}:{t[:40]}"))
    return out


ORDINARY = {f.__name__: f for f in (gutenberg, medquad, tatoeba, aozora, persona_chat, asdc,
                                      jsquad, ja_llm_answers)}

# --- labelled sources added for issue 11 --------------------------------------------------

AEGIS = {"Harassment": {"harassment"}, "Threat": {"threat", "violence"},
         "Hate/Identity Hate": {"hate"}, "Suicide and Self Harm": {"self_harm"},
         "Sexual (minor)": {"sexual_minors", "sexual"}, "Sexual": {"sexual"},
         "Profanity": {"profanity"}, "Violence": {"violence"},
         "Guns and Illegal Weapons": {"harmful_assistance", "illicit"},
         "Criminal Planning/Confessions": {"illicit"}, "Malware": {"illicit"},
         "Fraud/Deception": {"illicit"}, "Controlled/Regulated Substances": {"illicit"}}


def aegis(root: Path, rng: random.Random) -> list[Row]:
    """Aegis 2.0 sample: unsafe prompts by category (positives, requests) and the responses
    judged safe (negatives: LLM output to harmful requests that does not help)."""
    out = []
    for d in csv.DictReader(open(root / "en_aegis2_sample900" / "aegis_900.csv",
                                 encoding="utf-8-sig")):
        cats = AEGIS.get(d["category"])
        if cats is not None:
            out.append(_r("aegis", d["prompt"], 1, set(cats), exclusive=True, kind="prompt",
                          group=d["id"]))
        if d["instruct_response"].strip():
            out.append(_r("aegis", d["instruct_response"][:1500], 0, kind="llm_output",
                          group=d["id"]))
    return out


def dices(root: Path, rng: random.Random) -> list[Row]:
    """DICES chatbot turns: "Yes" = unsafe (majority of raters; see SOURCES.md)."""
    out, seen = [], set()
    for f in ("dices_350_expert.json", "dices_990.json"):
        for i in json.load(open(root / "dices_judgebench" / f, encoding="utf-8"))["instances"]:
            resp = i["instance"]["response"].strip()
            lab = i["annotations"]["safety"]["majority_human"]
            if len(resp) < 20 or resp in seen or lab not in ("Yes", "No"):
                continue
            seen.add(resp)
            out.append(_r("dices", resp, int(lab == "Yes"), set(), kind="llm_output",
                          group=str(i["id"])))
    return out


def stormfront(root: Path, rng: random.Random, n_neg: int = 1200) -> list[Row]:
    rows = list(csv.DictReader(open(root / "en_stormfront_hate" / "stormfront_sentences.csv",
                                    encoding="utf-8")))
    pos = [d for d in rows if d["label"] == "hate" and len(d["text"]) >= 20]
    neg = [d for d in rows if d["label"] == "noHate" and len(d["text"]) >= 20]
    out = [_r("stormfront", d["text"], 1, {"hate"}, group=d["user_id"]) for d in pos]
    out += [_r("stormfront", d["text"], 0, group=d["user_id"])
            for d in rng.sample(neg, min(n_neg, len(neg)))]
    return out


def toxigen(root: Path, rng: random.Random) -> list[Row]:
    out = []
    for ln in open(root / "en_toxigen_seed_statements" / "toxigen_seed_sentences.jsonl",
                   encoding="utf-8"):
        d = json.loads(ln)
        hate = d["label"] == "hate"
        out.append(_r("toxigen", d["text"], int(hate), {"hate"} if hate else None,
                      group=d["target_group"]))
    return out


def wiki_toxicity(root: Path, rng: random.Random) -> list[Row]:
    out = []
    for d in csv.DictReader(open(root / "en_wiki_toxicity_bias_eval" /
                                 "toxicity_nonfuzzed_testset.csv", encoding="utf-8")):
        text = re.sub(r"\s+", " ", d["comment"].replace("NEWLINE_TOKEN", " ")).strip()
        if len(text) >= 15:
            out.append(_r("wiki_toxicity", text[:1200], int(d["toxic"] == "True"),
                          group=d["rev_id"]))
    return out


LABELLED_NEW = {f.__name__: f for f in (aegis, dices, stormfront, toxigen, wiki_toxicity)}
