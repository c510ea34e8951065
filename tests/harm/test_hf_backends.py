"""detoxify and transformers backends: real loading code, offline, with tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardrail.errors import ScannerLoadError
from guardrail.pipeline.types import RequestMeta, ScanContext
from guardrail.scanners.harm import HarmConfig, HarmScanner
from tests.harm.tiny_models import build_detoxify, build_transformers

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("harm-models")
    ckpt, cfg_dir = build_detoxify(root)
    return {"ckpt": ckpt, "detox_dir": cfg_dir, "bert": build_transformers(root)}


def _ctx(text: str) -> ScanContext:
    return ScanContext(text=text, meta=RequestMeta("r1", "/v1/chat/completions", "p", "v", "s"))


def _scanner(**kw: object) -> HarmScanner:
    s = HarmScanner(HarmConfig(type="harm", **kw), None)  # type: ignore[arg-type]
    s.load()
    return s


async def test_detoxify_local_checkpoint_offline_maps_labels(models: dict[str, Path]) -> None:
    s = _scanner(backend="detoxify", model=str(models["ckpt"]),
                 huggingface_config_path=str(models["detox_dir"]), threshold=0.5)
    res = await s.scan(_ctx("you are an idiot and i will hurt your family"))
    cats = {f.category: f.score for f in res.findings}
    # threat -> threat, insult -> harassment; the low heads stay below the floor
    assert set(cats) == {"threat", "harassment"}
    assert all(v > 0.9 for v in cats.values())
    info = s.info()
    assert info.backend == "detoxify" and info.model_version.startswith("tiny-detox.ckpt")
    assert info.details["labels"][0] == "toxicity"  # detoxify's own renaming kept


async def test_detoxify_label_map_override(models: dict[str, Path]) -> None:
    s = _scanner(backend="detoxify", model=str(models["ckpt"]),
                 huggingface_config_path=str(models["detox_dir"]),
                 label_map={"threat": None, "insult": "hate"})
    res = await s.scan(_ctx("hello world"))
    assert {f.category for f in res.findings} == {"hate"}


def test_detoxify_hub_model_type_without_config_dir_fails_clearly(
        models: dict[str, Path]) -> None:
    with pytest.raises(ScannerLoadError) as err:
        _scanner(backend="detoxify", model=str(models["ckpt"]))
    e = err.value
    assert e.backend == "detoxify" and e.model == str(models["ckpt"])
    assert "huggingface_config_path" in e.missing


def test_detoxify_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ScannerLoadError, match="neither a file"):
        _scanner(backend="detoxify", model=str(tmp_path / "nope.ckpt"))


async def test_transformers_local_dir_softmax_and_common_labels(models: dict[str, Path]) -> None:
    s = _scanner(backend="transformers", model=str(models["bert"]), threshold=0.5)
    res = await s.scan(_ctx("you are stupid. nice day."))
    cats = {f.category: f.score for f in res.findings}
    assert list(cats) == ["harassment"]  # "Insult" via COMMON_LABELS; neutral ignored
    assert 0.7 < cats["harassment"] < 0.95  # softmax over 3 labels
    assert s.info().details["activation"] == "softmax"


async def test_transformers_policy_label_map_and_threshold(models: dict[str, Path]) -> None:
    s = _scanner(backend="transformers", model=str(models["bert"]), threshold=0.9,
                 label_map={"Insult": "violence", "self-harm": "self_harm"},
                 categories={"self_harm": {"threshold": 0.05}}, activation="sigmoid")
    res = await s.scan(_ctx("hello"))
    cats = {f.category: f.score for f in res.findings}
    # the scanner reports down to the lowest configured threshold; the runner applies rules
    assert set(cats) == {"violence", "self_harm"}
    assert cats["violence"] > 0.9  # sigmoid(3)


def test_transformers_unmappable_labels(tmp_path: Path, models: dict[str, Path]) -> None:
    with pytest.raises(ScannerLoadError, match="no model label maps"):
        _scanner(backend="transformers", model=str(models["bert"]),
                 label_map={"Insult": None, "self-harm": None})


def test_transformers_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ScannerLoadError) as err:
        _scanner(backend="transformers", model=str(tmp_path / "absent"))
    assert "config.json" in err.value.missing and err.value.backend == "transformers"


def test_unknown_category_rejected() -> None:
    with pytest.raises(ValueError, match="unknown harm categories"):
        HarmConfig(type="harm", categories={"spam": {"threshold": 0.5}})
