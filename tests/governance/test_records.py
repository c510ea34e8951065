"""Inventory and assessment files: validation errors name the file, the field, the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrail.errors import ConfigError, PolicyError
from guardrail.governance.assessments import load_assessment_file
from guardrail.governance.inventory import load_inventory, load_system_file
from guardrail.policy import PolicySet, load_policy_file
from tests.governance.conftest import assessment_doc, system_doc, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _without(doc: dict, *path: str) -> dict:
    d = doc
    for p in path[:-1]:
        d = d[p]
    del d[path[-1]]
    return doc


BAD_SYSTEMS = [
    pytest.param(_without(system_doc(), "owner", "title"), "owner.title", "required",
                 id="owner-without-title"),
    pytest.param(system_doc(lifecycle_stage="live"), "lifecycle_stage", "design",
                 id="unknown-stage"),
    pytest.param(system_doc(roles={"meti": ["ai_reseller"]}), "roles.meti[0]", "ai_provider",
                 id="unknown-meti-role"),
    pytest.param(system_doc(roles={"meti": []}), "roles.meti", "at least 1",
                 id="no-meti-role"),
    pytest.param(system_doc(roles={"meti": ["ai_provider"], "eu_ai_act": ["importer"]}),
                 "roles.eu_ai_act[0]", "deployer", id="unknown-eu-role"),
    pytest.param(system_doc(risk_level="severe"), "risk_level", "minimal", id="bad-risk"),
    pytest.param(system_doc(limitations=[]), "limitations", "at least 1",
                 id="no-limitations"),
    pytest.param(system_doc(decision_logic=""), "decision_logic", "at least 1",
                 id="empty-decision-logic"),
    pytest.param(system_doc(risk_level="unacceptable"), "(root)", "prohibited practice",
                 id="prohibited-in-operation"),
    pytest.param(system_doc(colour="blue"), "colour", "Extra inputs", id="unknown-field"),
]


@pytest.mark.parametrize(("doc", "field", "problem"), BAD_SYSTEMS)
def test_inventory_errors_name_file_and_field(tmp_path, doc, field, problem):
    path = write_yaml(tmp_path / "systems" / "chat.yaml", doc)
    with pytest.raises(PolicyError) as err:
        load_inventory(tmp_path / "systems")
    assert isinstance(err.value, ConfigError)
    assert err.value.file == str(path)
    fields = dict(err.value.problems)
    assert field in fields, err.value.problems
    assert problem in fields[field]
    assert f"{path}: {field}: " in str(err.value)
    assert str(err.value).startswith("invalid inventory system")


@pytest.mark.parametrize(("text", "field"), [
    pytest.param("id: [unclosed\n", "(yaml)", id="not-yaml"),
    pytest.param("- a list\n", "(root)", id="not-a-mapping"),
])
def test_inventory_file_that_is_not_a_record(tmp_path, text, field):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load_system_file(path)
    assert err.value.file == str(path) and err.value.problems[0][0] == field


def test_two_files_with_one_system_id(tmp_path):
    write_yaml(tmp_path / "a.yaml", system_doc())
    second = write_yaml(tmp_path / "b.yaml", system_doc())
    with pytest.raises(PolicyError) as err:
        load_inventory(tmp_path)
    assert err.value.file == str(second)
    assert "already defined" in dict(err.value.problems)["id"]


def test_system_id_defaults_to_file_stem(tmp_path):
    doc = system_doc()
    del doc["id"]
    write_yaml(tmp_path / "from-stem.yaml", doc)
    assert set(load_inventory(tmp_path).systems) == {"from-stem"}


@pytest.fixture
def policies(gov_dir):
    return PolicySet.load(gov_dir.root, [], "default", {}).policies


def _mit(**m):
    return [{"description": "r", "likelihood": "low", "impact": "low", "mitigations": [m]}]


BAD_ASSESSMENTS = [
    pytest.param({"risks": _mit(policy="default", scanner="harm")},
                 "risks[0].mitigations[0].scanner", "has no scanner 'harm'",
                 id="scanner-not-in-policy"),
    pytest.param({"risks": _mit(policy="strict", scanner="banned")},
                 "risks[0].mitigations[0].policy", "no policy named 'strict'",
                 id="unknown-mitigation-policy"),
    pytest.param({"risks": _mit(policy="default", scanner="banned", threshold=1.5)},
                 "risks[0].mitigations[0].threshold", "less than or equal to 1",
                 id="threshold-out-of-range"),
    pytest.param({"system": "billing"}, "system", "no inventory system 'billing'",
                 id="unknown-system"),
    pytest.param({"policies": [{"policy": "default", "policy_version": "v1"}]},
                 "policies[0].policy_version", "should match", id="bad-version-hash"),
    pytest.param({"policies": [{"policy": "other", "policy_version": "0" * 16}]},
                 "policies[0].policy", "no policy named 'other'", id="unknown-assessed-policy"),
    pytest.param({"approval_date": None}, "(root)", "go together",
                 id="approver-without-date"),
    pytest.param({"approval_date": "2025-01-01"}, "(root)", "before the assessment",
                 id="approved-before-assessed"),
    pytest.param({"risks": [{"description": "r", "likelihood": "often", "impact": "low"}]},
                 "risks[0].likelihood", "'low'", id="bad-likelihood"),
    pytest.param({"date": "March"}, "date", "date", id="bad-date"),
    pytest.param({"risks": []}, "risks", "at least 1", id="no-risks"),
]


@pytest.mark.parametrize(("over", "field", "problem"), BAD_ASSESSMENTS)
def test_assessment_errors_name_file_and_field(gov_dir, policies, over, field, problem):
    path = write_yaml(gov_dir.assessments / "a.yaml", assessment_doc("0" * 16, **over))
    with pytest.raises(PolicyError) as err:
        load_assessment_file(path, policies, {"chat"})
    assert err.value.file == str(path)
    fields = dict(err.value.problems)
    assert field in fields, err.value.problems
    assert problem in fields[field], fields[field]
    assert str(err.value).startswith("invalid risk assessment")


def test_shipped_inventory_and_assessment_validate():
    policies = PolicySet.load(REPO / "policies", [], "default", {}).policies
    inv = load_inventory(REPO / "policies" / "systems")
    assert "default" in inv.systems and inv.found
    assert load_policy_file(REPO / "policies" / "default.yaml").system == "default"
    for path in sorted((REPO / "policies" / "assessments").glob("*.yaml")):
        a = load_assessment_file(path, policies, set(inv.systems))
        assert a.system in inv.systems
