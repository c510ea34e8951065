"""Which assessment is current for each system, and whether the system is due for
re-assessment.

A system is **due** when any of these holds:

* ``no_approved_assessment``: no approved assessment of it exists;
* ``policy_not_assessed``: a loaded policy governing it (one whose ``system`` is its id) is
  not among the policies its current assessment assessed;
* ``policy_changed``: such a policy's current version differs from the assessed version;
* ``model_not_assessed``: traffic shows an answering model (``models_seen``) that the
  assessment's ``upstream_models`` do not cover.

The current assessment is the approved one with the latest approval date (then date, then
id).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guardrail.governance.assessments import Assessment
from guardrail.governance.inventory import AISystem, covers
from guardrail.policy import Policy

REASONS = ("no_approved_assessment", "policy_not_assessed", "policy_changed",
           "model_not_assessed")


@dataclass(frozen=True)
class Reason:
    code: str
    detail: str
    policy: str | None = None
    model: str | None = None
    assessed_version: str | None = None
    current_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class SystemStatus:
    system_id: str
    assessment: str | None  # the current (approved) assessment's id
    reasons: list[Reason] = field(default_factory=list)
    drafts: list[str] = field(default_factory=list)  # unapproved assessments
    models_seen: list[str] = field(default_factory=list)
    governing_policies: list[str] = field(default_factory=list)

    @property
    def due(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"due": self.due, "assessment": self.assessment,
                "reasons": [r.as_dict() for r in self.reasons], "drafts": self.drafts,
                "models_seen": self.models_seen, "policies": self.governing_policies}


def current(assessments: list[Assessment]) -> Assessment | None:
    approved = [a for a in assessments if a.approved]
    return max(approved, key=lambda a: (a.approval_date, a.date, a.id), default=None)


def evaluate_system(system: AISystem, assessments: list[Assessment],
                    policies: dict[str, Policy], seen: set[str]) -> SystemStatus:
    mine = [a for a in assessments if a.system == system.id]
    governing = sorted(n for n, p in policies.items() if p.system == system.id)
    cur = current(mine)
    drafts = sorted(a.id for a in mine if not a.approved)
    reasons: list[Reason] = []
    if cur is None:
        reasons.append(Reason("no_approved_assessment",
                              f"system {system.id!r} has no approved risk assessment"))
    else:
        assessed = {p.policy: p.policy_version for p in cur.policies}
        for name in governing:
            version = policies[name].version
            if name not in assessed:
                reasons.append(Reason("policy_not_assessed", f"policy {name!r} governs it but "
                                      f"assessment {cur.id!r} did not assess it", policy=name,
                                      current_version=version))
            elif assessed[name] != version:
                reasons.append(Reason(
                    "policy_changed", f"policy {name!r} is now version {version}; assessment "
                    f"{cur.id!r} assessed {assessed[name]}", policy=name,
                    assessed_version=assessed[name], current_version=version))
        for model in sorted(seen):
            if not covers(cur.upstream_models, model):
                reasons.append(Reason("model_not_assessed", f"model {model!r} answered; "
                                      f"assessment {cur.id!r} did not cover it", model=model))
    return SystemStatus(system.id, cur.id if cur else None, reasons, drafts, sorted(seen),
                        governing)


def evaluate(systems: dict[str, AISystem], assessments: list[Assessment],
             policies: dict[str, Policy], seen: dict[str, set[str]],
             ) -> dict[str, SystemStatus]:
    return {sid: evaluate_system(s, assessments, policies, seen.get(sid, set()))
            for sid, s in sorted(systems.items())}
