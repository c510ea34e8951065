"""Governance test helpers: a policy directory with an inventory and assessments."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.people.helpers import HOLD_POLICY

# the held-term policy of the review tests, governing system `chat`, with a second scanner
POLICY = HOLD_POLICY.replace("name: default\n", "name: default\nsystem: chat\n") + """\
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""
assert "system: chat" in POLICY


def system_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "chat", "name": "Support chat", "lifecycle_stage": "operation",
        "roles": {"meti": ["ai_provider"], "eu_ai_act": ["deployer"]},
        "owner": {"name": "Hanako Sato", "title": "Chief Risk Officer"},
        "capabilities": ["answers product questions"], "limitations": ["may be wrong"],
        "intended_uses": ["product questions"], "prohibited_uses": ["medical advice"],
        "decision_logic": "an LLM answers; guardrail scans the answer",
        "upstream_models": ["echo*"], "policies": ["default"], "risk_level": "limited"}
    doc.update(over)
    return doc


def assessment_doc(version: str, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "chat-2025", "system": "chat", "date": "2025-03-01",
        "assessor": {"name": "Taro Suzuki", "title": "Risk analyst"},
        "context_of_use": "customers ask product questions",
        "risks": [{"description": "a banned term leaks", "likelihood": "low", "impact": "high",
                   "mitigations": [{"policy": "default", "scanner": "banned"}]}],
        "residual_risk": "low",
        "approver": {"name": "Hanako Sato", "title": "Chief Risk Officer"},
        "approval_date": "2025-03-02",
        "policies": [{"policy": "default", "policy_version": version}],
        "upstream_models": ["echo*"]}
    doc.update(over)
    return doc


def write_yaml(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class GovDir:
    root: Path

    @property
    def policies(self) -> Path:
        return self.root

    @property
    def systems(self) -> Path:
        return self.root / "systems"

    @property
    def assessments(self) -> Path:
        return self.root / "assessments"

    def policy(self, text: str = POLICY, name: str = "default") -> Path:
        p = self.root / f"{name}.yaml"
        p.write_text(textwrap.dedent(text), encoding="utf-8")
        return p

    def version(self, name: str = "default") -> str:
        from guardrail.policy import load_policy_file

        return load_policy_file(self.root / f"{name}.yaml").version

    def system(self, **over: Any) -> Path:
        doc = system_doc(**over)
        return write_yaml(self.systems / f"{doc['id']}.yaml", doc)

    def assessment(self, version: str | None = None, **over: Any) -> Path:
        doc = assessment_doc(version or self.version(), **over)
        return write_yaml(self.assessments / f"{doc['id']}.yaml", doc)

    def settings(self, **over: Any) -> Any:
        from guardrail.settings import Settings

        values: dict[str, Any] = {"database_url": f"sqlite:///{self.root}/g.db",
                                  "policy_dir": self.root}
        values.update(over)
        return Settings(**values)


@pytest.fixture
def gov_dir(tmp_path: Path) -> GovDir:
    d = GovDir(tmp_path / "policies")
    d.root.mkdir()
    d.policy()
    return d


@pytest.fixture
def full_gov_dir(gov_dir: GovDir) -> GovDir:
    """A policy governing system ``chat``, its inventory entry and an approved assessment of
    the policy's current version covering models ``echo*``."""
    gov_dir.system()
    gov_dir.assessment()
    return gov_dir
