"""PII quality: per-entity precision/recall/F1, pattern-only and NER modes, same run.

* presidio_synth (English, 1,600 texts): EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, IBAN_CODE,
  IP_ADDRESS, US_SSN (+ PERSON, LOCATION, ORGANIZATION in ner mode). Gold STREET_ADDRESS and
  GPE count as LOCATION. A prediction is right when it overlaps a gold span of its type.
  Scored three ways: on a fixed *dev* half, a held-out *test* half and the full set. The split
  is by text: ``sha256(full_text)``'s first byte even -> dev (807 texts), odd -> test (793).
  Recognizer changes are designed by looking at dev misses only; test is reported, not tuned.
* ja_ner_stockmark (Japanese Wikipedia, 5,343 sentences): recall of 人名 -> PERSON,
  法人名/政治的組織名/その他の組織名 -> ORGANIZATION, 地名 -> LOCATION (JP_ADDRESS also counts),
  and how many Japanese structured identifiers fire on sentences that hold none.
* A generated Japanese identifier set: valid and invalid check digits, wrong lengths,
  embedded runs and non-PII numbers in realistic sentences; plus random 12/13-digit order
  numbers, to show the by-chance check-digit rate.

Scores count at the scanner's default threshold (0.5). Usage:
    GUARDRAIL_EVAL_DATA=../shared/eval .venv/bin/python benchmarks/eval_pii.py [--modes pattern ner]
Japanese NER needs the optional ja-ginza package (e.g. on PYTHONPATH); without it ner mode
reports Japanese names/places from patterns only, and says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

THRESHOLD = 0.5
EN_TYPES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN"]
NER_TYPES = ["PERSON", "LOCATION", "ORGANIZATION"]
GOLD_MAP = {"STREET_ADDRESS": "LOCATION", "GPE": "LOCATION"}
PRED_MAP = {"JP_PHONE_NUMBER": "PHONE_NUMBER", "JP_ADDRESS": "LOCATION"}
JA_GOLD = {"人名": "PERSON", "法人名": "ORGANIZATION", "政治的組織名": "ORGANIZATION",
           "その他の組織名": "ORGANIZATION", "地名": "LOCATION"}
JP_TYPES = ["JP_MY_NUMBER", "JP_CORPORATE_NUMBER", "JP_PHONE_NUMBER", "JP_POSTAL_CODE",
            "JP_DRIVER_LICENSE", "JP_PASSPORT", "JP_BANK_ACCOUNT", "JP_ADDRESS"]


def data_dir() -> Path:
    return Path(os.environ.get("GUARDRAIL_EVAL_DATA", ROOT.parent / "shared" / "eval"))


_ASCII = "0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FW = str.maketrans(_ASCII, "".join(chr(ord(c) + 0xFEE0) for c in _ASCII))
NAMES = ["山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "中村"]
ADDRESSES = [
    ("東京都", "千代田区", "丸の内"), ("東京都", "世田谷区", "三軒茶屋"),
    ("大阪府", "大阪市北区", "梅田"),
    ("神奈川県", "横浜市西区", "みなとみらい"), ("愛知県", "名古屋市中区", "栄"),
    ("福岡県", "福岡市博多区", "博多駅前"), ("北海道", "札幌市中央区", "大通西"),
    ("京都府", "京都市下京区", "烏丸通"), ("埼玉県", "さいたま市浦和区", "高砂"),
    ("兵庫県", "神戸市中央区", "三宮町"), ("静岡県", "浜松市中央区", "板屋町"),
    ("千葉県", "船橋市", "本町"), ("長野県", "松本市", "中央"), ("沖縄県", "那覇市", "久茂地"),
    ("宮城県", "仙台市青葉区", "一番町"), ("広島県", "広島市中区", "基町"),
]


def my_number(rng: random.Random, valid: bool = True) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(11))
    total = sum(int(body[11 - n]) * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
    check = 0 if total % 11 <= 1 else 11 - total % 11
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    return body + str(check)


def corporate_number(rng: random.Random, valid: bool = True) -> str:
    body = "".join(rng.choice("0123456789") for _ in range(12))
    total = sum(int(body[12 - n]) * (1 if n % 2 else 2) for n in range(1, 13))
    check = 9 - total % 9
    if not valid:
        check = rng.choice([d for d in range(10) if d != check])
    return str(check) + body


def phone(rng: random.Random) -> str:
    def d(n: int) -> str:  # subscriber/exchange groups never start with 0 in Japan
        return rng.choice("123456789") + "".join(rng.choice("0123456789") for _ in range(n - 1))

    kind = rng.choice(["mobile", "land2", "land3", "land4", "land5", "ip", "free", "navi",
                       "intl", "free800"])
    if kind == "mobile":
        return f"{rng.choice(['090', '080', '070'])}-{d(4)}-{d(4)}"
    if kind == "land2":
        return f"0{rng.choice('36')}-{d(4)}-{d(4)}"
    if kind == "land3":
        return f"0{rng.choice(['45', '52', '92', '11', '22'])}-{d(3)}-{d(4)}"
    if kind == "land4":
        return f"0{rng.choice(['466', '276', '285'])}-{d(2)}-{d(4)}"
    if kind == "land5":
        return f"0{rng.choice(['1267', '1372', '4992'])}-{d(1)}-{d(4)}"
    if kind == "ip":
        return f"050-{d(4)}-{d(4)}"
    if kind == "free":
        return f"0120-{d(3)}-{d(3)}"
    if kind == "free800":
        return f"0800-{d(3)}-{d(4)}"
    if kind == "navi":
        return f"0570-{d(3)}-{d(3)}"
    return f"+81-{rng.choice(['90', '80', '3', '6'])}-{d(4)}-{d(4)}"


def _sep(rng: random.Random, number: str, groups: tuple[int, ...]) -> str:
    sep = rng.choice(["", " ", "-"])
    parts, i = [], 0
    for g in groups:
        parts.append(number[i : i + g])
        i += g
    return sep.join(parts)


def _place(text: str, value: str, entity: str | None) -> tuple[str, list[tuple[str, int, int]]]:
    s = text.index("{}")
    out = text.replace("{}", value, 1)
    return out, ([(entity, s, s + len(value))] if entity else [])


def _maybe_fw(rng: random.Random, value: str) -> str:
    return value.translate(FW) if rng.random() < 0.25 else value


def generate(n_per_type: int = 150, seed: int = 7) -> list[tuple[str, list[tuple[str, int, int]]]]:
    rng = random.Random(seed)
    items: list[tuple[str, list[tuple[str, int, int]]]] = []

    def add(template: str, value: str, entity: str | None) -> None:
        items.append(_place(template, value, entity))

    for _ in range(n_per_type):
        name = rng.choice(NAMES)
        mn = _maybe_fw(rng, _sep(rng, my_number(rng), (4, 4, 4)))
        add(rng.choice([
            f"{name}様のマイナンバーは{{}}です。", "個人番号：{}",
            f"{name}さんの個人番号 {{}} を確認しました。",
            "マイナンバーカードの番号は{}となっております。", "申請書に{}と記入してください。",
        ]), mn, "JP_MY_NUMBER")
        add(rng.choice(["マイナンバーは{}です。", "個人番号：{}", "番号{}は無効です。"]),
            _sep(rng, my_number(rng, valid=False), (4, 4, 4)), None)
        cn = corporate_number(rng)
        add(rng.choice(["法人番号：{}", "当社の法人番号は{}です。", "登録番号 T{} の請求書",
                        "取引先（法人番号{}）より連絡"]), cn, "JP_CORPORATE_NUMBER")
        add(rng.choice(["法人番号：{}", "登録番号 T{} の請求書"]),
            corporate_number(rng, False), None)
        ph = _maybe_fw(rng, phone(rng))
        add(rng.choice([
            "お電話は{}までお願いします。", f"{name}の携帯：{{}}", "TEL {}",
            "ご不明点は{}へお問い合わせください。",
            "緊急連絡先 {}", "折り返しは{}にください。",
        ]), ph, "JP_PHONE_NUMBER")
        bad_phone = rng.choice([f"090-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                                f"03-{rng.randint(1000, 9999)}-{rng.randint(10000, 99999)}",
                                f"0120-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"])
        add(rng.choice(["電話番号は{}です。", "TEL {}"]), bad_phone, None)
        pc = f"{rng.randint(100, 999)}-{rng.randint(0, 9999):04d}"
        pref, city, town = rng.choice(ADDRESSES)
        addr = f"{pref}{city}{town}{rng.randint(1, 5)}-{rng.randint(1, 30)}-{rng.randint(1, 20)}"
        add(rng.choice(["〒{} " + "所在地", "郵便番号：{}", "〒{}"]), _maybe_fw(rng, pc),
            "JP_POSTAL_CODE")
        add(rng.choice(["品番{}の在庫", "型式 {} を参照"]), pc, None)
        add(rng.choice(["住所は{}です。", "お届け先：{}", f"{name}様（{{}}）宛に送付",
                        "{}にお住まいの方"]),
            addr, "JP_ADDRESS")
        add(rng.choice(["{}に行きます。", "{}の人口は多い。", "{}内の市場は混雑。"]), pref, None)
        lic = f"{rng.randint(10, 97)}{rng.randint(0, 99):02d}{rng.randint(0, 99999999):08d}"
        add(rng.choice(["運転免許証番号：{}", "免許証の番号は{}です。",
                        "運転免許証（番号{}）を提示"]),
            lic, "JP_DRIVER_LICENSE")
        pp = rng.choice(["TK", "TR", "TZ", "MU", "MZ", "NE"]) + f"{rng.randint(0, 9999999):07d}"
        add(rng.choice(["旅券番号：{}", "パスポート番号は{}です。", "パスポート（{}）の有効期限"]),
            _maybe_fw(rng, pp), "JP_PASSPORT")
        acct = f"{rng.randint(0, 9999999):07d}"
        add(rng.choice(["口座番号 {}", "普通預金 {} ヤマダタロウ",
                        "振込先：○○銀行 渋谷支店 普通 {}"]),
            acct, "JP_BANK_ACCOUNT")
        add(rng.choice(["在庫は{}個あります。", "売上は{}円でした。", "会員数 {} 名"]), acct, None)
        order = "".join(rng.choice("0123456789") for _ in range(rng.choice([8, 10, 14, 16])))
        add(rng.choice(["注文番号{}の商品", "伝票番号：{}", "受付番号 {}"]), order, None)
        date = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        add("会議は{}に開催します。", date, None)
        embedded = str(rng.randint(10, 99)) + my_number(rng)
        add(rng.choice(["シリアル番号{}", "管理番号：{}"]), embedded, None)
    return items


def random_order_numbers(n: int = 1000, digits: int = 12, seed: int = 11) -> list[str]:
    """Sentences with uniformly random 12- or 13-digit order numbers (no personal data): about
    one in ten passes a check digit by chance; the eval reports how many are flagged."""
    rng = random.Random(seed)
    numbers = ("".join(rng.choice("0123456789") for _ in range(digits)) for _ in range(n))
    return [f"注文番号 {x} の商品を発送しました。" for x in numbers]


def prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": tp, "fp": fp, "fn": fn}


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score_items(analyzer, items, lang, types, gold_map=None, pred_map=None, entities=None):
    """items: (text, [(type, start, end)]). Returns per-type P/R/F1 for ``types``."""
    counts = {t: Counter() for t in types}
    for text, gold in items:
        g = [((gold_map or {}).get(t, t), s, e) for t, s, e in gold]
        preds = [((pred_map or {}).get(m.entity, m.entity), m.start, m.end)
                 for m in analyzer.analyze(text, lang, entities) if m.score >= THRESHOLD]
        for t in types:
            gs = [(s, e) for tt, s, e in g if tt == t]
            ps = [(s, e) for tt, s, e in preds if tt == t]
            counts[t]["tp"] += sum(any(overlaps(x, y) for y in ps) for x in gs)
            counts[t]["fn"] += sum(not any(overlaps(x, y) for y in ps) for x in gs)
            counts[t]["fp"] += sum(not any(overlaps(y, x) for x in gs) for y in ps)
    return {t: prf(c["tp"], c["fp"], c["fn"]) for t, c in counts.items()}


def synth_split(text: str) -> str:
    """``dev`` or ``test``: a stable ~50/50 split of presidio_synth by a hash of the text."""
    return "dev" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 2 == 0 else "test"


class _Memo:
    """Analyzer results per (text, language): dev, test and full are scored from one pass."""

    def __init__(self, analyzer):
        self.analyzer, self.cache = analyzer, {}

    def analyze(self, text, lang, entities=None):
        key = (text, lang, tuple(entities or ()))
        if key not in self.cache:
            self.cache[key] = self.analyzer.analyze(text, lang, entities)
        return self.cache[key]


def presidio_synth(analyzer, mode):
    analyzer = _Memo(analyzer)
    d = data_dir() / "presidio_synth"
    rows = json.loads((d / "synth_dataset_v2.json").read_text()) + json.loads(
        (d / "generated_small.json").read_text())
    items = [(r["full_text"], [(s["entity_type"], s["start_position"], s["end_position"])
                               for s in r["spans"]]) for r in rows]
    types = EN_TYPES + (NER_TYPES if mode == "ner" else [])
    ents = EN_TYPES + JP_TYPES + (NER_TYPES if mode == "ner" else [])
    out: dict[str, object] = {"texts": len(items), "split": "sha256(full_text)[0] even = dev"}
    for part in ("dev", "test"):
        sub = [it for it in items if synth_split(it[0]) == part]
        out[part] = {"texts": len(sub),
                     "per_entity": score_items(analyzer, sub, "en", types, GOLD_MAP, PRED_MAP,
                                               ents)}
    out["per_entity"] = score_items(analyzer, items, "en", types, GOLD_MAP, PRED_MAP, ents)
    jp_fp = Counter(m.entity for text, _ in items for m in analyzer.analyze(text, "en", ents)
                    if m.entity in JP_TYPES and m.entity not in PRED_MAP and m.score >= THRESHOLD)
    out["jp_identifier_false_positives"] = dict(jp_fp)
    return out


def table(out) -> str:
    """English per-entity P/R/F1 on dev, test and full presidio_synth, plus the Japanese
    generated identifiers, one block per mode."""
    lines = []
    for mode, res in out["modes"].items():
        ps = res["presidio_synth"]
        lines.append(f"[{mode}] presidio_synth (dev {ps['dev']['texts']} / test "
                     f"{ps['test']['texts']} / full {ps['texts']} texts)   P / R / F1 (tp fp fn)")
        for t, full in ps["per_entity"].items():
            cells = []
            for r in (ps["dev"]["per_entity"][t], ps["test"]["per_entity"][t], full):
                cells.append(f"{r['precision']:.3f}/{r['recall']:.3f}/{r['f1']:.3f} "
                             f"({r['tp']} {r['fp']} {r['fn']})")
            lines.append(f"  {t:<14} dev {cells[0]:<28} test {cells[1]:<28} full {cells[2]}")
        jp = res["jp_generated"]
        lines.append(f"[{mode}] jp_generated ({jp['sentences']} sentences)")
        for t, r in jp["per_entity"].items():
            lines.append(f"  {t:<20} P {r['precision']:.3f} R {r['recall']:.3f} "
                         f"(tp {r['tp']} fp {r['fp']} fn {r['fn']})")
    return "\n".join(lines)


def stockmark(analyzer, mode, limit):
    rows = json.loads((data_dir() / "ja_ner_stockmark" / "ner.json").read_text())
    random.Random(3).shuffle(rows)
    rows = rows[:limit] if limit else rows
    items = [(r["text"], [(JA_GOLD[e["type"]], *e["span"]) for e in r["entities"]
                          if e["type"] in JA_GOLD]) for r in rows]
    ents = JP_TYPES + (NER_TYPES if mode == "ner" else [])
    res = score_items(analyzer, items, "ja", NER_TYPES, None, {"JP_ADDRESS": "LOCATION"}, ents)
    structured = Counter(m.entity for text, _ in items for m in analyzer.analyze(text, "ja", ents)
                         if m.entity in JP_TYPES and m.entity != "JP_ADDRESS"
                         and m.score >= THRESHOLD)
    return {"sentences": len(items),
            "recall": {t: res[t]["recall"] for t in NER_TYPES},
            "per_entity": res,
            "structured_identifiers_fired": dict(structured)}


def jp_generated(analyzer):
    items = generate()
    res = score_items(analyzer, items, "ja", JP_TYPES, None, None, JP_TYPES)
    chance = {}
    for digits, ent in ((12, "JP_MY_NUMBER"), (13, "JP_CORPORATE_NUMBER")):
        texts = random_order_numbers(1000, digits)
        hits = sum(any(m.entity == ent and m.score >= THRESHOLD for m in analyzer.analyze(t, "ja"))
                   for t in texts)
        chance[f"random_{digits}_digit_flagged_as_{ent}"] = hits / len(texts)
    pos = sum(bool(g) for _, g in items)
    micro = Counter()
    for r in res.values():
        micro.update({k: r[k] for k in ("tp", "fp", "fn")})
    return {"sentences": len(items), "positives": pos, "negatives": len(items) - pos,
            "per_entity": res, "micro": prf(micro["tp"], micro["fp"], micro["fn"]),
            "by_chance_without_context": chance}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", nargs="+", default=["pattern", "ner"])
    ap.add_argument("--stockmark-limit", type=int, default=0,
                    help="sentences of ja_ner_stockmark (0 = all; ginza is ~50 ms each)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pii_eval.json"))
    args = ap.parse_args()
    from guardrail.scanners.pii import PiiAnalyzer

    out = {"threshold": THRESHOLD, "modes": {}}
    for mode in args.modes:
        t0 = time.perf_counter()
        analyzer = PiiAnalyzer(mode)
        load_s = time.perf_counter() - t0
        limit = args.stockmark_limit
        if mode == "ner" and "ja_ginza" in analyzer.models["ja"] and not limit:
            limit = 1000
        t1 = time.perf_counter()
        result = {
            "models": analyzer.models, "degraded": analyzer.degraded,
            "load_s": round(load_s, 2),
            "presidio_synth": presidio_synth(analyzer, mode),
            "ja_ner_stockmark": stockmark(analyzer, mode, limit),
            "jp_generated": jp_generated(analyzer),
        }
        result["eval_s"] = round(time.perf_counter() - t1, 1)
        out["modes"][mode] = result
        print(json.dumps({mode: result}, ensure_ascii=False, indent=1))
    Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
