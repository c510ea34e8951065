"""The loaded governance records and their status: :class:`Governance`.

Built once per process by :func:`load_governance` (the app's :func:`setup
<guardrail.governance.setup.setup>`, and the CLI): the inventory, the assessments (checked
against the loaded policies), the models seen in traffic, and each system's re-assessment
status, kept current as new models are observed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrail.errors import PolicyError
from guardrail.governance.assessments import Assessment, load_assessments
from guardrail.governance.inventory import Inventory, load_inventory, placeholder
from guardrail.governance.models_seen import ModelsSeen
from guardrail.governance.records import read_mapping, yaml_files
from guardrail.governance.status import SystemStatus, evaluate
from guardrail.logs import event
from guardrail.policy import PolicySet
from guardrail.settings import Settings

log = logging.getLogger("guardrail.governance")
DEFAULT_SYSTEM = "default"


def inventory_dir(settings: Settings) -> Path:
    return settings.inventory_dir or settings.policy_dir / "systems"


def assessments_dir(settings: Settings) -> Path:
    return settings.assessments_dir or settings.policy_dir / "assessments"


def policy_sources(settings: Settings) -> dict[str, Path]:
    """Which file each policy came from (as :meth:`PolicySet.load` reads them), for errors."""
    out: dict[str, Path] = {}
    for f in [*yaml_files(settings.policy_dir), *settings.policy_files]:
        try:
            name = read_mapping(f, "policy").get("name") or f.stem
        except PolicyError:
            continue
        out[str(name)] = f
    return out


@dataclass
class Governance:
    inventory: Inventory
    assessments: dict[str, tuple[Path, Assessment]]
    policies: PolicySet
    seen_store: ModelsSeen | None = None
    seen: dict[str, set[str]] = field(default_factory=dict)
    status: dict[str, SystemStatus] = field(default_factory=dict)
    ready: dict[str, Any] = field(default_factory=dict)  # ``ready_governance``: a snapshot
    publish: Callable[[dict[str, Any]], None] | None = None  # called with each new snapshot
    refreshed_at: float = 0.0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def assessment_list(self) -> list[Assessment]:
        return [a for _, a in self.assessments.values()]

    def recompute(self) -> None:
        """New status and a new ``ready`` snapshot (published whole, never edited after, so
        a reader on another thread never sees it change)."""
        with self._lock:
            self.status = evaluate(self.inventory.systems, self.assessment_list(),
                                   self.policies.policies, self.seen)
            self.ready = {
                "inventory": {"found": self.inventory.found,
                              "directory": str(self.inventory.directory or ""),
                              "systems": sorted(self.inventory.systems)},
                "assessments": sorted(self.assessments),
                "reassessment_due": self.due(),
                "systems": {s: st.as_dict() for s, st in self.status.items()},
            }
            if self.publish is not None:
                self.publish(self.ready)

    def note_model(self, system_id: str, model: str) -> None:
        """A model this process had not seen for the system: status changes at once."""
        with self._lock:
            if model in self.seen.get(system_id, set()):
                return
            self.seen.setdefault(system_id, set()).add(model)
            self.recompute()

    def reload_seen(self) -> None:
        """Re-read ``models_seen`` (what other processes saw) and recompute."""
        if self.seen_store is None:
            return
        got = self.seen_store.by_system()
        with self._lock:
            for sid, models in got.items():
                self.seen.setdefault(sid, set()).update(models)
            self.refreshed_at = time.monotonic()
            self.recompute()

    def due(self) -> list[str]:
        return sorted(s for s, st in self.status.items() if st.due)


def _check_policies(settings: Settings, inventory: Inventory, policies: PolicySet) -> None:
    sources = policy_sources(settings)
    for name, p in sorted(policies.policies.items()):
        if p.system not in inventory.systems:
            where = sources.get(name, Path(f"(policy {name})"))
            raise PolicyError(str(where), [("system", (
                f"policy {name!r} names system {p.system!r}, which the inventory "
                f"{inventory.directory} does not have (it has {sorted(inventory.systems)})"))])
    for sid, system in sorted(inventory.systems.items()):
        for name in system.policies:
            listed = policies.policies.get(name)
            if listed is None:
                event(log, logging.WARNING, "inventory_policy_not_loaded", system=sid,
                      policy=name)
            elif listed.system != sid:
                event(log, logging.WARNING, "inventory_policy_names_other_system", system=sid,
                      policy=name, policy_system=listed.system)


def load_governance(settings: Settings, policies: PolicySet,
                    seen_store: ModelsSeen | None = None) -> Governance:
    """Inventory and assessments for these ``policies``. Raises :class:`PolicyError` (a
    ConfigError) for a record that does not validate and, when an inventory exists, for a
    policy naming a system it lacks; with no inventory, each system the policies name is a
    placeholder and a warning says so."""
    inventory = load_inventory(inventory_dir(settings))
    if not inventory.found:
        named = {DEFAULT_SYSTEM, *(p.system for p in policies.policies.values())}
        inventory.systems = {sid: placeholder(sid) for sid in sorted(named)}
        event(log, logging.WARNING, "inventory_placeholder", directory=str(inventory.directory),
              systems=sorted(named), message="no AI system inventory found: using built-in "
              "PLACEHOLDER systems; describe each system in policies/systems/*.yaml")
    else:
        _check_policies(settings, inventory, policies)
    assessments = load_assessments(assessments_dir(settings), policies.policies,
                                   set(inventory.systems))
    gov = Governance(inventory, assessments, policies, seen_store)
    if seen_store is not None:
        gov.reload_seen()
    else:
        gov.recompute()
    return gov
