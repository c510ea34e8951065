"""The governance tables and queries on PostgreSQL (a fresh schema, session time zone
Asia/Tokyo): the models_seen upsert from two processes, and the report's evidence."""

from __future__ import annotations

import pytest

from guardrail.governance.models_seen import ModelsSeen
from guardrail.governance.report import Context, build
from guardrail.governance.service import load_governance
from guardrail.policy import PolicySet
from tests.governance.chain_helpers import pg_chain_fixture  # noqa: F401
from tests.governance.test_report import _ev, _row, _seed, _today

pytestmark = pytest.mark.postgres


def test_models_seen_and_report_on_postgres(pg_chain, full_gov_dir):
    settings = full_gov_dir.settings(database_url=pg_chain.url)
    policies = PolicySet.load(settings.policy_dir, [], "default", {})
    first, second = ModelsSeen(pg_chain.engine), ModelsSeen(pg_chain.engine)
    for seen in (first, second):  # two processes see the same pair
        assert seen.observe("chat", "gpt-9")
        assert not seen.observe("chat", "gpt-9")
        seen.flush()
    (row,) = first.rows("chat")
    assert (row["model"], row["count"]) == ("gpt-9", 2)
    assert row["first_seen"] <= row["last_seen"]
    _seed(pg_chain.store, policies.policies["default"].version)
    gov = load_governance(settings, policies, first)
    assert gov.due() == ["chat"]  # gpt-9 is not covered by echo*
    rep = build(Context(settings, policies, gov, pg_chain.engine), _today(), "ja")
    assert _ev(_row(rep, "safety"), "interventions:harm")["value"] == 3
    assert _ev(_row(rep, "human_oversight"), "time_to_decision")["value"] == 2
    assert _ev(_row(rep, "risk_assessment"), "models_seen")["value"] == 1
    assert _ev(_row(rep, "incident_redress"), "redress")["recorded"] is True
    for seen in (first, second):
        seen.close()
