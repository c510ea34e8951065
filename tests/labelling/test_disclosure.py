"""Text disclosure: headers, the guardrail.disclosure field, the visible notice, config."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from guardrail.labelling.disclosure import (
    apply_notice,
    disclosure_field,
    disclosure_headers,
    notice_delta,
    visible_notice,
)
from guardrail.policy import Policy


def policy(**labelling: Any) -> Policy:
    return Policy.model_validate({"name": "jp-enterprise", "system": "chat-1",
                                  "labelling": labelling})


def test_default_policy_discloses_without_a_visible_notice() -> None:
    p = policy()
    h = disclosure_headers(p, "gpt-4o", "req_1")
    assert h["X-AI-Generated"] == "true"
    assert h["X-Guardrail-AI-Model"] == "gpt-4o"
    assert h["X-Guardrail-Policy"] == f"jp-enterprise@{p.version}"
    assert h["X-Guardrail-Request-Id"] == "req_1"
    f = disclosure_field(p, "gpt-4o")
    assert f == {"ai_generated": True, "model": "gpt-4o", "generator": "guardrail",
                 "policy": "jp-enterprise", "policy_version": p.version, "system": "chat-1",
                 "notice": None, "text_c2pa": False}
    assert visible_notice(p, "en", "gpt-4o") is None
    assert apply_notice(p, "hello", "en", "gpt-4o") == "hello"


@pytest.mark.parametrize(("cfg", "headers", "field"), [
    pytest.param({"disclosure": False}, False, False, id="all-off"),
    pytest.param({"headers": False}, False, True, id="headers-off"),
])
def test_disclosure_can_be_turned_off(cfg: dict[str, Any], headers: bool, field: bool) -> None:
    p = policy(**cfg)
    assert bool(disclosure_headers(p, "m", "r")) is headers
    assert (disclosure_field(p, "m") is not None) is field


def test_header_values_are_ascii_safe() -> None:
    h = disclosure_headers(policy(), "モデル\r\nX-Evil: 1", None)
    assert h["X-Guardrail-AI-Model"].isascii() and "\n" not in h["X-Guardrail-AI-Model"]
    assert "X-Guardrail-Request-Id" not in h


@pytest.mark.parametrize(("position", "language", "expected"), [
    pytest.param("append", "en", "hello\n\n[AI-generated content: produced by gpt-4o",
                 id="append-en"),
    pytest.param("prepend", "ja", "［AI生成コンテンツ：gpt-4o が生成し", id="prepend-ja"),
    pytest.param("append", "fr", "hello\n\n[AI-generated content", id="fallback-en"),
    pytest.param("append", None, "hello\n\n[AI-generated content", id="no-language"),
])
def test_visible_notice(position: str, language: str | None, expected: str) -> None:
    p = policy(notice={"position": position})
    out = apply_notice(p, "hello", language, "gpt-4o", "req_9")
    assert out.startswith(expected)
    assert "jp-enterprise" in out and "hello" in out
    pos, text = visible_notice(p, language, "gpt-4o") or ("", "")
    assert pos == position and text in out


def test_custom_texts_and_placeholders() -> None:
    p = policy(notice={"position": "append", "separator": " ",
                       "texts": {"en": "(AI: {model}, {policy}@{version}, {request_id})",
                                 "ja": "（AI生成：{model}）"}})
    expected = f"hi (AI: m1, jp-enterprise@{p.version}, req_2)"
    assert apply_notice(p, "hi", "en", "m1", "req_2") == expected
    assert apply_notice(p, "こんにちは", "ja", "m1") == "こんにちは （AI生成：m1）"


@pytest.mark.parametrize(("position", "delta"), [
    pytest.param("append", "\n\n[AI-generated", id="append"),
    pytest.param("prepend", "[AI-generated", id="prepend"),
])
def test_streaming_notice_delta(position: str, delta: str) -> None:
    pos, text = notice_delta(policy(notice={"position": position}), "en", "m") or ("", "")
    assert pos == position and text.startswith(delta)
    assert text.endswith("\n\n") is (position == "prepend")


@pytest.mark.parametrize(("labelling", "fragment"), [
    pytest.param({"notice": {"texts": {"en": "{secret}"}}}, "unknown placeholder",
                 id="unknown-placeholder"),
    pytest.param({"notice": {"texts": {"en": "{}"}}}, "unknown placeholder", id="positional"),
    pytest.param({"notice": {"position": "middle"}}, "position", id="bad-position"),
    pytest.param({"images": {"thumbnail": 5}}, "thumbnail", id="tiny-thumbnail"),
    pytest.param({"images": {"timestamp_authority": "ftp://x"}}, "http", id="tsa-not-http"),
    pytest.param({"images": {"on_tsa_failure": "ignore"}}, "on_tsa_failure", id="tsa-mode"),
    pytest.param({"colour": "red"}, "colour", id="unknown-key"),
])
def test_bad_labelling_config_is_rejected(labelling: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        policy(**labelling)


def test_labelling_is_part_of_the_policy_version() -> None:
    assert policy().version != policy(notice={"position": "append"}).version
    assert policy().version == policy(notice={"position": "off"}).version
