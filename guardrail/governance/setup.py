"""Start-up wiring: :func:`setup` (called by :func:`guardrail.app.build_state`) and
:func:`observe_model` (called by the proxy for every answered response).

``setup(state)`` loads the inventory and the assessments (a bad record, or a policy naming a
system the inventory lacks, raises a ConfigError that names the file and the field), puts on
``state.extras``:

* ``governance``: the :class:`~guardrail.governance.service.Governance`;
* ``observe_model``: :func:`observe_model`, called as ``observe_model(state, system_id,
  model)``;
* ``ready_governance``: what the admin ``/v1/guardrail/readyz`` shows (inventory,
  assessments, systems due for re-assessment and why): a new dict each time the status
  changes (setup, a new answering model, a reload of ``models_seen``), so always current;

and registers the gauge ``guardrail_reassessment_due{system}`` (1: due) on the app's
registry. Other processes' sightings reach this one through the ``models_seen`` table: a
scrape re-reads it in the background at most every :data:`RELOAD_EVERY_S`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric

from guardrail.governance.models_seen import ModelsSeen
from guardrail.governance.service import Governance, load_governance
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.deps import AppState

log = logging.getLogger("guardrail.governance")
RELOAD_EVERY_S = 30.0
GAUGE = "guardrail_reassessment_due"
PARTNERS = ("lifecycle", "redress", "retention", "bundle")


def governance(state: AppState) -> Governance:
    gov: Governance = state.extras["governance"]
    return gov


def setup(state: AppState) -> None:
    seen = state.runtime.service("governance.models_seen", lambda: ModelsSeen(state.store.engine))
    gov = load_governance(state.settings, state.policies, seen)
    state.extras["governance"] = gov
    state.extras["observe_model"] = observe_model
    state.extras["ready_governance"] = gov.ready
    gov.publish = lambda snapshot: state.extras.__setitem__("ready_governance", snapshot)
    state.metrics.registry.register(DueCollector(gov))
    _setup_partners(state)
    for sid in gov.due():
        event(log, logging.WARNING, "reassessment_due", system=sid,
              reasons=[r.code for r in gov.status[sid].reasons])


def _setup_partners(state: AppState) -> None:
    """``setup(state)`` of this package's other modules (the incident lifecycle's gauge, ...)
    where they exist and define one."""
    import importlib
    import importlib.util

    for name in PARTNERS:
        module = f"guardrail.governance.{name}"
        if importlib.util.find_spec(module) is None:
            continue
        fn = getattr(importlib.import_module(module), "setup", None)
        if callable(fn) and getattr(fn, "__module__", None) == module:
            fn(state)


def observe_model(state: AppState, system_id: str, model: str | None) -> None:
    """The answering ``model`` of a response for ``system_id`` (the policy's ``system``).
    Cheap: a set lookup for a pair this process has seen; a new pair updates the status at
    once and is written to ``models_seen`` by a background thread."""
    gov: Governance | None = state.extras.get("governance")
    if gov is None or gov.seen_store is None or not model:
        return
    if gov.seen_store.observe(system_id, model):
        gov.note_model(system_id[:128], model[:256])
        if gov.status.get(system_id) is not None and gov.status[system_id].due:
            event(log, logging.INFO, "reassessment_due", system=system_id,
                  reasons=[r.code for r in gov.status[system_id].reasons])


class DueCollector:
    """``guardrail_reassessment_due{system}``, from the current status at scrape time."""

    def __init__(self, gov: Governance) -> None:
        self.gov = gov

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(GAUGE, "1 when the AI system is due for re-assessment (no "
                                 "approved assessment, a governing policy changed, or an "
                                 "answering model it did not cover)", labels=["system"])

    def collect(self) -> Iterator[Metric]:
        gov = self.gov
        if gov.seen_store is not None and time.monotonic() - gov.refreshed_at > RELOAD_EVERY_S:
            gov.refreshed_at = time.monotonic()
            gov.seen_store.submit(_reload, gov)  # never on the scrape's thread
        fam = self._family()
        for sid, st in sorted(gov.status.items()):
            fam.add_metric([sid], 1.0 if st.due else 0.0)
        yield fam


def _reload(gov: Governance) -> None:
    try:
        gov.reload_seen()
    except Exception as exc:  # noqa: BLE001 - the last known status stays
        event(log, logging.WARNING, "models_seen_reload_failed", error=type(exc).__name__)
