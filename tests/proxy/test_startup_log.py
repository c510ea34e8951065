"""What runs is announced at start-up: backend, model, version and the encoder behind it."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from guardrail.app import _announce


def _state(describe: list[dict]) -> SimpleNamespace:
    pipe = SimpleNamespace(describe=lambda: describe, policy=SimpleNamespace(version="abc123"))
    settings = SimpleNamespace(upstream_api_key=None, dev_mode=False, admin_key="k")
    return SimpleNamespace(
        settings=settings, store=SimpleNamespace(engine=SimpleNamespace(
            dialect=SimpleNamespace(name="sqlite"))),
        policies=SimpleNamespace(policies={"default": None}, default="default"),
        pipelines={"default": pipe}, extras={},
        upstream=SimpleNamespace(base_url="http://upstream/v1"))


def test_announce_names_backend_version_and_encoder(caplog: pytest.LogCaptureFixture) -> None:
    harm = {"name": "harm", "backend": "embedded", "model": "models/harm",
            "model_version": "heads-sha256:0123456789ab",
            "details": {"encoder": "multilingual-e5-small on torch bf16", "cascade": True,
                        "route_sentences": True, "route_power": 4.0, "zoom_from": 0.25}}
    pii = {"name": "pii", "backend": "presidio", "model": None, "model_version": None,
           "details": {}, "degraded": "ner model missing", "enforcement": "monitor"}
    with caplog.at_level(logging.INFO, logger="guardrail"):
        _announce(_state([harm, pii]))  # type: ignore[arg-type]
    text = caplog.text
    assert ("scanner harm: enforcement=enforce backend=embedded model=models/harm "
            "version=heads-sha256:0123456789ab encoder=multilingual-e5-small on torch bf16 "
            "cascade=True route_sentences=True route_power=4.0\n") in text
    assert ("scanner pii: enforcement=monitor backend=presidio model=- version=- DEGRADED: ner "
            "model missing") in text
