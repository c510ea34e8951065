"""Risk assessments: one YAML file per assessment in ``policies/assessments/``.

An assessment records, for one inventory system, the context of use, each risk with its
likelihood, impact and the policy controls that mitigate it (``{policy, scanner,
threshold?}``: the scanner must exist in that policy), the residual risk, who assessed and
who approved it and when, the policy versions it assessed (``policy`` + ``policy_version``,
the hash ``guardrail policy check`` prints) and the upstream models it covered.

Example (``policies/assessments/default-initial.yaml`` is a complete one)::

    id: support-chat-2025-04
    system: support-chat
    date: 2025-04-01
    assessor: {name: Taro Suzuki, title: Risk analyst}
    context_of_use: Customers of the web shop ask product questions ...
    risks:
      - description: The assistant insults a customer
        likelihood: low
        impact: medium
        mitigations:
          - {policy: default, scanner: harm, threshold: 0.88}
    residual_risk: low
    approver: {name: Hanako Sato, title: Chief Customer Officer}
    approval_date: 2025-04-03
    policies: [{policy: default, policy_version: 3f1c9a2b7d4e5f60}]
    upstream_models: ["gpt-4o-mini*"]

An assessment without ``approver`` and ``approval_date`` is a draft: it counts for nothing
until approved. Which assessment is current, and whether the system is due for re-assessment,
is :mod:`guardrail.governance.status`'s.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrail.governance.inventory import Owner
from guardrail.governance.records import RecordError, load_dir, load_record
from guardrail.policy import Policy

KIND = "risk assessment"
Level = Literal["low", "medium", "high"]


class Mitigation(BaseModel):
    """A policy control that mitigates a risk."""

    model_config = ConfigDict(extra="forbid")

    policy: str = Field(min_length=1)
    scanner: str = Field(min_length=1, description="The scanner's name in that policy.")
    threshold: float | None = Field(None, ge=0, le=1, description="The threshold relied on.")
    note: str = ""


class Risk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(min_length=1)
    likelihood: Level
    impact: Level
    mitigations: list[Mitigation] = Field(default_factory=list)
    other_measures: list[str] = Field(default_factory=list, description="Measures outside "
                                      "guardrail (training, contracts, process).")


class AssessedPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str = Field(min_length=1)
    policy_version: str = Field(pattern=r"^[0-9a-f]{16}$", description="The version hash "
                                "assessed (guardrail policy check prints it).")


class Assessment(BaseModel):
    """One risk assessment of one inventory system."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    system: str = Field(min_length=1)
    date: dt.date
    assessor: Owner
    context_of_use: str = Field(min_length=1)
    risks: list[Risk] = Field(min_length=1)
    residual_risk: Level
    approver: Owner | None = None
    approval_date: dt.date | None = None
    policies: list[AssessedPolicy] = Field(min_length=1)
    upstream_models: list[str] = Field(default_factory=list, description="Models assessed; "
                                       "shell-style patterns match dated versions.")
    notes: str = ""

    @property
    def approved(self) -> bool:
        return self.approver is not None and self.approval_date is not None

    @model_validator(mode="after")
    def _consistent(self) -> Assessment:
        if (self.approver is None) != (self.approval_date is None):
            raise ValueError("approver and approval_date go together (both unset: a draft)")
        if self.approval_date is not None and self.approval_date < self.date:
            raise ValueError("approval_date is before the assessment's date")
        return self


def _against(a: Assessment, policies: dict[str, Policy], systems: set[str] | None,
             ) -> list[tuple[str, str]]:
    """What in ``a`` names something that is not loaded: (field, problem)."""
    problems: list[tuple[str, str]] = []
    if systems is not None and a.system not in systems:
        problems.append(("system", f"no inventory system {a.system!r}"))
    for i, risk in enumerate(a.risks):
        for j, m in enumerate(risk.mitigations):
            at = f"risks[{i}].mitigations[{j}]"
            policy = policies.get(m.policy)
            if policy is None:
                problems.append((f"{at}.policy", f"no policy named {m.policy!r} is loaded"))
                continue
            names = [s.instance_name for s in policy.scanners]
            if m.scanner not in names:
                problems.append((f"{at}.scanner", f"policy {m.policy!r} has no scanner "
                                 f"{m.scanner!r} (it has {names or 'none'})"))
    for i, ap in enumerate(a.policies):
        if ap.policy not in policies:
            problems.append((f"policies[{i}].policy", f"no policy named {ap.policy!r} is loaded"))
    return problems


def load_assessment_file(path: str | Path, policies: dict[str, Policy] | None = None,
                         systems: set[str] | None = None) -> Assessment:
    """One assessment, checked against the loaded ``policies`` (mitigations name a scanner
    of the policy) and the inventory's ``systems`` when given."""
    path = Path(path)
    a = load_record(path, Assessment, KIND)
    problems = _against(a, policies, systems) if policies is not None else []
    if problems:
        raise RecordError(str(path), problems, KIND)
    return a


def load_assessments(directory: Path | None, policies: dict[str, Policy],
                     systems: set[str] | None = None) -> dict[str, tuple[Path, Assessment]]:
    return load_dir(directory, lambda p: load_assessment_file(p, policies, systems), KIND,
                    key=lambda a: a.id)


def describe(a: Assessment) -> dict[str, Any]:
    return {**a.model_dump(mode="json"), "approved": a.approved}
