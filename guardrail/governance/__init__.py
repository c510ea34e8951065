"""Governance records and regulator-ready evidence (issue 14).

* :mod:`~guardrail.governance.inventory`: the AI system inventory (``policies/systems/``);
* :mod:`~guardrail.governance.assessments`: risk assessments (``policies/assessments/``);
* :mod:`~guardrail.governance.status`: which systems are due for re-assessment;
* :mod:`~guardrail.governance.models_seen`: the answering models seen in traffic;
* :mod:`~guardrail.governance.report`: the compliance report (cross-map in ``data/``);
* :mod:`~guardrail.governance.setup`: start-up wiring, ``observe_model``;
* :mod:`~guardrail.governance.routes`: the API and pages; :mod:`~guardrail.governance.cli`;
* the incident lifecycle, redress, retention and evidence bundles: ``lifecycle``,
  ``redress``, ``retention``, ``bundle`` and their route modules.
"""
