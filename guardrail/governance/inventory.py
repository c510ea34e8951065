"""The AI system inventory: one YAML file per AI system in ``policies/systems/``.

Every policy names the system it governs (``system:``). An inventory entry says what the
system is, who answers for it, where it is in its lifecycle, which roles the organisation
plays for it (METI AI Guidelines for Business: AI developer, AI provider, AI business user;
EU AI Act: provider, deployer), what it can and cannot do, what it is for and not for, how it
decides, which upstream models answer for it, and its risk level.

Risk levels follow the EU AI Act's tiers (``minimal``, ``limited``, ``high``,
``unacceptable``): ``limited`` is a system with transparency obligations (Art. 50, e.g. a chat
assistant or a generator of synthetic content), ``high`` one of Art. 6 / Annex III, and
``unacceptable`` a prohibited practice (Art. 5), which can only be recorded as designed or
decommissioned, never as deployed or operating. The METI guidelines prescribe no tiers; an
organisation using its own scale records it in ``risk_rationale``.

With no inventory at all (a fresh install), each system the policies name is a built-in
placeholder (:func:`placeholder`) and start-up warns; once an inventory exists, a policy
naming a system it lacks fails start-up.

Example (``policies/systems/default.yaml`` is a complete one)::

    id: support-chat
    name: Customer support assistant
    lifecycle_stage: operation
    roles: {meti: [ai_provider], eu_ai_act: [deployer]}
    owner: {name: Hanako Sato, title: Chief Customer Officer}
    capabilities: [Answers product questions in Japanese and English]
    limitations: [May state wrong facts; no access to customer accounts]
    intended_uses: [Answering customers' product questions]
    prohibited_uses: [Legal, medical or financial advice]
    decision_logic: An upstream LLM drafts each answer; guardrail scans it ...
    upstream_models: ["gpt-4o-mini*"]
    policies: [default]
    risk_level: limited
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrail.governance.records import load_dir, load_record

KIND = "inventory system"
STAGES = ("design", "development", "deployment", "operation", "decommissioned")
RISK_LEVELS = ("minimal", "limited", "high", "unacceptable")
MetiRole = Literal["ai_developer", "ai_provider", "ai_business_user"]
EuRole = Literal["provider", "deployer"]


class Roles(BaseModel):
    model_config = ConfigDict(extra="forbid")

    meti: list[MetiRole] = Field(min_length=1, description="METI AI Guidelines for Business "
                                 "roles: ai_developer, ai_provider, ai_business_user.")
    eu_ai_act: list[EuRole] = Field(default_factory=list, description="EU AI Act roles "
                                    "(provider, deployer), where the Act applies.")


class Owner(BaseModel):
    """The accountable owner: a named person at senior level."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1, max_length=128, description="Their position, e.g. "
                       "Chief Risk Officer.")
    contact: str | None = Field(None, max_length=256)


class AISystem(BaseModel):
    """One AI system of the inventory."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    name: str = Field(min_length=1, max_length=256)
    description: str = ""
    lifecycle_stage: Literal["design", "development", "deployment", "operation",
                             "decommissioned"]
    roles: Roles
    owner: Owner
    capabilities: list[str] = Field(min_length=1)
    limitations: list[str] = Field(min_length=1)
    intended_uses: list[str] = Field(min_length=1)
    prohibited_uses: list[str] = Field(min_length=1)
    decision_logic: str = Field(min_length=1, max_length=4000)
    upstream_models: list[str] = Field(
        default_factory=list, description="Models expected to answer; shell-style patterns "
        "(gpt-4o-mini*) match dated versions.")
    policies: list[str] = Field(default_factory=list, description="The guardrail policies "
                                "that govern it (each must name this system).")
    risk_level: Literal["minimal", "limited", "high", "unacceptable"]
    risk_rationale: str = ""
    placeholder: bool = Field(False, exclude=True)

    @model_validator(mode="after")
    def _prohibited_not_live(self) -> AISystem:
        if self.risk_level == "unacceptable" and self.lifecycle_stage in (
                "development", "deployment", "operation"):
            raise ValueError("a system of unacceptable risk (a prohibited practice) cannot be "
                             f"in {self.lifecycle_stage}; only design or decommissioned")
        return self


def covers(patterns: list[str], model: str) -> bool:
    """Whether ``model`` is one of ``patterns`` (exact, or a shell-style pattern)."""
    return any(p == model or fnmatch.fnmatchcase(model, p) for p in patterns)


def placeholder(system_id: str) -> AISystem:
    """The stand-in for a system named by a policy while no inventory exists."""
    missing = "Not documented: no inventory file (policies/systems/) was found."
    return AISystem(
        id=system_id, name=f"{system_id} (placeholder: no inventory)", description=missing,
        lifecycle_stage="operation", roles=Roles(meti=["ai_provider"]),
        owner=Owner(name="not named", title="not named"), capabilities=[missing],
        limitations=[missing], intended_uses=[missing], prohibited_uses=[missing],
        decision_logic=missing, risk_level="limited",
        risk_rationale="Placeholder: the organisation has not assessed this system.",
        placeholder=True)


@dataclass
class Inventory:
    systems: dict[str, AISystem]
    files: dict[str, Path] = field(default_factory=dict)
    directory: Path | None = None
    found: bool = True  # False: no inventory directory or file; the systems are placeholders

    def get(self, system_id: str) -> AISystem | None:
        return self.systems.get(system_id)


def load_system_file(path: str | Path) -> AISystem:
    return load_record(Path(path), AISystem, KIND)


def load_inventory(directory: Path | None) -> Inventory:
    """The inventory in ``directory`` (``found`` False when it has no YAML file)."""
    got = load_dir(directory, load_system_file, KIND, key=lambda s: s.id)
    return Inventory(systems={k: s for k, (_, s) in got.items()},
                     files={k: p for k, (p, _) in got.items()}, directory=directory,
                     found=bool(got))
