from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardrail.cli import main
from guardrail.errors import PolicyError
from guardrail.policy import load_policy_file

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(("text", "field", "problem"), [
    pytest.param("name: x\nscanner_timeout_ms: -5\n", "scanner_timeout_ms", "greater than",
                 id="bad-number"),
    pytest.param("name: x\nunknown_key: 1\n", "unknown_key", "Extra inputs",
                 id="unknown-field"),
    pytest.param("name: x\nscanners:\n  - type: denylist\n    action: obliterate\n",
                 "scanners[0].action", "Input should be", id="bad-action"),
    pytest.param("name: x\nscanners:\n  - type: denylist\n    patterns: ['(']\n",
                 "scanners[0].patterns", "invalid regular expression", id="bad-regex"),
    pytest.param("name: x\nscanners:\n  - type: nosuch\n", "scanners[0]", "'denylist'",
                 id="unknown-scanner"),
    pytest.param("name: x\nstream: {holdback_chars: lots}\n", "stream.holdback_chars",
                 "integer", id="nested"),
])
def test_bad_policy_names_file_field_problem(tmp_path, text, field, problem):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"{field}:" in msg or f"{field}.type:" in msg
    assert problem in msg


def test_version_hash_ignores_formatting_but_not_meaning(tmp_path):
    a = load_policy_file(write(tmp_path, "name: x\nscanners: [{type: denylist, terms: [a]}]\n"))
    b = load_policy_file(write(tmp_path, "# comment\nname: x\nscanners:\n  - terms: [a]\n"
                                         "    type: denylist\n"))
    c = load_policy_file(write(tmp_path, "name: x\nscanners: [{type: denylist, terms: [b]}]\n"))
    assert a.version == b.version != c.version


def test_shipped_policies_are_valid():
    for f in sorted((REPO / "policies").glob("*.yaml")):
        assert load_policy_file(f).name


def test_cli_policy_check_and_schema(tmp_path, capsys):
    bad = write(tmp_path, "name: x\nscanners:\n  - type: denylist\n    action: nope\n")
    assert main(["policy", "check", str(bad)]) == 1
    assert "scanners[0].action" in capsys.readouterr().err
    assert main(["policy", "check", str(REPO / "policies" / "default.yaml")]) == 0
    capsys.readouterr()
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "guardrail policy"
    assert "scanners" in schema["properties"]


def test_serve_refuses_public_bind_without_keys(monkeypatch, capsys):
    monkeypatch.delenv("GUARDRAIL_API_KEYS", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "refusing to bind" in capsys.readouterr().err


@pytest.mark.parametrize(("score", "expected"), [
    pytest.param(0.97, ("block", 0.95), id="block-tier"),
    pytest.param(0.9, ("flag", 0.8), id="flag-tier"),
    pytest.param(0.5, None, id="below"),
])
def test_two_tier_thresholds(score, expected):
    from guardrail.scanners.denylist import DenylistConfig

    cfg = DenylistConfig(threshold=0.95, action="block", flag_threshold=0.8)
    got = cfg.decide("x", score)
    assert (None if got is None else (got[1].value, got[0])) == expected
    per_cat = DenylistConfig(threshold=0.95, categories={"y": {"threshold": 0.9,
                                                               "flag_threshold": 0.3}})
    assert per_cat.decide("y", 0.4)[1].value == "flag"


def test_committed_json_schema_is_current() -> None:
    """policies/policy.schema.json (for editors) is what the code validates against; a config
    field added or changed without regenerating it (`guardrail policy schema >
    policies/policy.schema.json`) fails here."""
    import json
    from pathlib import Path

    from guardrail.policy import policy_json_schema

    path = Path(__file__).resolve().parents[2] / "policies" / "policy.schema.json"
    assert json.loads(path.read_text(encoding="utf-8")) == policy_json_schema()
