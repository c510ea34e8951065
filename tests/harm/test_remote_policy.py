"""Policies with the remote harm backends: what validates, and the errors that do not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from guardrail.errors import PolicyError
from guardrail.policy import load_policy_file
from guardrail.scanners.harm import HarmConfig

HEAD = """
name: p
scanners:
  - type: harm
"""


def _load(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    f = tmp_path / "p.yaml"
    f.write_text(HEAD + textwrap.indent(textwrap.dedent(body), "    "), encoding="utf-8")
    return load_policy_file(f)


def test_remote_policies_validate(tmp_path: Path):
    p = _load(tmp_path, """\
        backend: openai-moderation
        url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY
        model: omni-moderation-latest
        connect_timeout_ms: 500
        request_timeout_ms: 3000
        """)
    cfg = p.scanners[0]
    assert isinstance(cfg, HarmConfig) and cfg.backend == "openai-moderation"
    assert cfg.chunk_chars == 400
    j = _load(tmp_path, """\
        backend: llm-judge
        url: http://127.0.0.1:11434/v1
        model: llama-guard3
        judge_input: conversation
        on_error: fail_closed
        """).scanners[0]
    assert isinstance(j, HarmConfig) and j.chunk_chars == 4000 and j.judge_input == "conversation"
    j2 = _load(tmp_path, """\
        backend: llm-judge
        url: http://127.0.0.1:8000
        model: meta-llama/Llama-Guard-3-8B
        chunk_chars: 1000
        """).scanners[0]
    assert isinstance(j2, HarmConfig) and j2.chunk_chars == 1000


@pytest.mark.parametrize(("body", "message"), [
    ("backend: openai-moderation\n", "needs url"),
    ("backend: llm-judge\nurl: http://h/v1\n", "llm-judge needs model"),
    ("backend: openai-moderation\nurl: ftp://h/v1\n", "url must be http(s)"),
    ("backend: openai-moderation\nurl: https://u:p@h/v1\n", "must not carry credentials"),
    ("backend: openai-moderation\nurl: https://h/v1?key=1\n", "query"),
    ("backend: embedded\nurl: https://h/v1\n", "only for the openai-moderation / llm-judge"),
    ("backend: openai-moderation\nurl: https://h/v1\nrequest_timeout_ms: 0\n",
     "greater than 0"),
    ("backend: llm-judge\nurl: https://h/v1\nmodel: g\njudge_input: raw\n", "judge_input"),
])
def test_bad_remote_policies_are_explained(tmp_path: Path, body: str, message: str):
    with pytest.raises(PolicyError) as err:
        _load(tmp_path, body)
    assert message in str(err.value)


def test_a_key_pasted_into_api_key_env_is_refused_and_not_echoed(tmp_path: Path):
    key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
    with pytest.raises(PolicyError) as err:
        _load(tmp_path, f"backend: openai-moderation\nurl: https://h/v1\napi_key_env: {key}\n")
    assert "NAME of an environment variable" in str(err.value)
    assert key not in str(err.value)


def test_commented_examples_in_default_policy_validate(tmp_path: Path):
    """The remote-backend examples commented out in policies/default.yaml, uncommented."""
    src = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
    lines = src.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "# - type: harm")
    block = []
    for ln in lines[start:]:
        if not ln.startswith("  # ") or not (ln[4:].startswith("- ") or ln[4:6] == "  "):
            break
        block.append("  " + ln[4:])
    f = tmp_path / "p.yaml"
    f.write_text("name: p\nscanners:\n" + "\n".join(block) + "\n", encoding="utf-8")
    scanners = load_policy_file(f).scanners
    assert [(s.backend, s.name) for s in scanners] == [  # type: ignore[attr-defined]
        ("openai-moderation", "harm-moderation"), ("llm-judge", "harm-judge")]
