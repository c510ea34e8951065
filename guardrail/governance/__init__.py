"""Governance records and regulator-ready evidence (issue 14).

The AI system inventory (:mod:`guardrail.governance.inventory`), risk assessments
(:mod:`guardrail.governance.assessments`), the answering models seen in traffic
(:mod:`guardrail.governance.models_seen`) and the compliance report
(:mod:`guardrail.governance.report`). :func:`guardrail.governance.setup.setup` wires them
into the application state at start-up.
"""
