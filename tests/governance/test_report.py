"""The compliance report: one row per requirement, evidence counted from a seeded store,
cross-map from data, Japanese and English (JSON, Markdown, HTML), API, pages and CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guardrail.cli import main
from guardrail.db import make_engine, upgrade
from guardrail.governance import catalog
from guardrail.governance.crossmap import FRAMEWORKS, catalogue
from guardrail.governance.evidence import Period
from guardrail.governance.models_seen import ModelsSeen
from guardrail.governance.report import Context, build, render
from guardrail.governance.service import load_governance
from guardrail.holds.models import HeldResponseRow
from guardrail.incidents.store import IncidentStore
from guardrail.policy import PolicySet
from guardrail.review.decisions import decide
from tests.governance.chain_helpers import REVIEWER, draft

KEYS = {"requirement", "control", "evidence", "cross_map", "gap"}
TEMPLATES = Path(catalog.__file__).parent / "templates"
METI_PRINCIPLES = ["human_centric", "safety", "fairness", "privacy", "security", "transparency",
                   "accountability", "education_literacy", "fair_competition", "innovation"]


def _seed(store: IncidentStore, version: str) -> None:
    """3 harm blocks (2 hate, 1 violence), 2 PII redactions, 1 banned-term hold, a scanner
    failure, a monitor-mode flag; one block rejected, one released by a reviewer."""
    common = {"system_id": "chat", "policy_version": version}
    ids = store.append([
        draft(1, scanner="harm", category="hate", **common),
        draft(2, scanner="harm", category="hate", **common),
        draft(3, scanner="harm", category="violence", **common),
        draft(4, scanner="pii", category="phone", action="redact", review_status="not_required",
              **common),
        draft(5, scanner="pii", category="email", action="redact",
              review_status="not_required", **common),
        draft(6, scanner="banned", category="banned_term", action="hold", **common),
        draft(7, scanner="harm", kind="scanner_failure", action="flag",
              review_status="not_required", **common),
        draft(8, scanner="harm", category="profanity", kind="monitor", action="flag",
              review_status="not_required", **common),
    ])
    decide(store, ids[0], decision="reject", reason="abusive", who=REVIEWER)
    decide(store, ids[1], decision="release", reason="quoted in a news report", who=REVIEWER)
    now = datetime.now(UTC)
    with store.sessions.begin() as s:
        for i, status in enumerate(("released", "rejected", "pending")):
            s.add(HeldResponseRow(
                id=f"hr_{i}", created_at=now, expires_at=now + timedelta(days=1), tenant=None,
                api_key_id=None, policy_name="default", request_id=f"req_h{i}",
                route="/v1/chat/completions", incident_ids=[], status=status, key_id="k1",
                ciphertext=None, content_sha256="0" * 64, media_type="application/json",
                decided_at=None, decided_by="system" if status == "rejected" else None))


@pytest.fixture
def seeded(full_gov_dir):
    settings = full_gov_dir.settings()
    engine = make_engine(settings.database_url)
    upgrade(settings.database_url, engine)
    policies = PolicySet.load(settings.policy_dir, [], "default", {})
    _seed(IncidentStore(engine), policies.policies["default"].version)
    from guardrail.labelling.counts import LabelCounts

    counts = LabelCounts(IncidentStore(engine))  # responses released labelled
    counts.add("default", "notice", 4)
    counts.add("default", "image", 2)
    counts.flush()
    seen = ModelsSeen(engine)
    gov = load_governance(settings, policies, seen)
    yield Context(settings, policies, gov, engine)
    seen.close()
    engine.dispose()


def _today() -> Period:
    today = datetime.now(UTC).date()
    return Period(today - timedelta(days=1), today + timedelta(days=1))


def _row(report, rid):
    (row,) = [r for r in report["rows"] if r["requirement"]["id"] == rid]
    return row


def _ev(row, key):
    (it,) = [e for e in row["evidence"] if e["key"] == key]
    return it


def test_json_report_has_one_row_per_requirement(seeded):
    rep = json.loads(render(build(seeded, _today(), "en"), "json"))
    reqs = catalogue().requirements
    assert [r["requirement"]["id"] for r in rep["rows"]] == [r.id for r in reqs]
    assert len(rep["rows"]) == 20
    assert [r.id for r in reqs if r.group == "principle"] == METI_PRINCIPLES
    for row in rep["rows"]:
        assert set(row) == KEYS
        assert set(row["cross_map"]) == set(FRAMEWORKS)
        for fw in FRAMEWORKS:
            assert row["cross_map"][fw], (row["requirement"]["id"], fw)
            for entry in row["cross_map"][fw]:
                assert entry["source"] and (entry["ref"] or entry["note"])
        assert row["requirement"]["source"].startswith("METI AI Guidelines for Business")
        assert row["control"]["summary"] and row["evidence"]
        assert isinstance(row["gap"], str)


def test_evidence_is_counted_from_the_store(seeded):
    rep = build(seeded, _today(), "en")
    safety = _row(rep, "safety")
    harm = _ev(safety, "interventions:harm")
    assert harm["value"] == 3 and harm["recorded"]
    assert "harm / hate → block: 2" in harm["detail"]
    assert _ev(safety, "scanner_failures")["value"] == 1
    assert _ev(_row(rep, "fairness"), "interventions:harm:hate+harassment")["value"] == 2
    assert _ev(_row(rep, "privacy"), "interventions:pii")["value"] == 2
    assert _ev(_row(rep, "safety"), "interventions:denylist")["value"] == 1  # banned: a denylist
    oversight = _row(rep, "human_oversight")
    reviews = _ev(oversight, "reviews")
    assert reviews["value"] == 2
    assert set(reviews["detail"]) == {"released: 1", "rejected: 1"}
    assert _ev(oversight, "reviews.deciders")["value"] == 1
    assert _ev(oversight, "time_to_decision")["value"] == 2
    assert _ev(oversight, "holds")["value"] == 3
    assert _ev(oversight, "holds.expired")["value"] == 1
    incidents = _ev(oversight, "incidents")
    assert incidents["value"] == 8
    assert "open: 2" in incidents["detail"]  # harm #3 and the hold
    assert _ev(oversight, "incidents.overdue")["value"] == 0
    chain = _ev(_row(rep, "regulatory_documentation"), "chain")
    assert chain["value"] == 10  # 8 incidents and 2 sealed decisions
    labelled = _ev(_row(rep, "transparency"), "labelled_outputs")
    assert labelled["recorded"] and labelled["value"] == 6
    assert set(labelled["detail"]) == {"image: 2", "notice: 4"}
    for rid in ("education_literacy", "fair_competition", "innovation"):
        row = _row(rep, rid)
        assert [e["recorded"] for e in row["evidence"]] == [False]
        assert row["gap"]
    # the assessment of the policy's current version covers echo*: current
    assert _ev(_row(rep, "risk_assessment"), "assessments.current")["value"] == 1
    assert _ev(_row(rep, "risk_assessment"), "assessments.due")["value"] == 0
    # a period without the seeded records counts nothing
    old = build(seeded, Period(date(2020, 1, 1), date(2020, 1, 31)), "en")
    assert _ev(_row(old, "safety"), "interventions:harm")["value"] == 0


def test_redress_and_lifecycle_are_read_when_their_tables_exist(seeded):
    rep = build(seeded, _today(), "en")
    assert _ev(_row(rep, "incident_redress"), "redress")["recorded"] is True
    with seeded.engine.begin() as c:
        c.exec_driver_sql("DROP TABLE redress")
        c.exec_driver_sql("DROP TABLE incident_lifecycle")
    rep = build(seeded, _today(), "en")
    for key in ("redress", "lifecycle"):
        it = _ev(_row(rep, "incident_redress"), key)
        assert it["recorded"] is False and it["value"] is None and it["detail"]


def test_due_systems_and_unnamed_owners_become_gaps(gov_dir):
    gov_dir.system(owner={"name": "TO BE NAMED", "title": "CRO"})  # no assessment: due
    settings = gov_dir.settings()
    engine = make_engine(settings.database_url)
    upgrade(settings.database_url, engine)
    policies = PolicySet.load(settings.policy_dir, [], "default", {})
    ctx = Context(settings, policies, load_governance(settings, policies), engine)
    rep = build(ctx, _today(), "ja")
    assert "再評価してください：chat" in _row(rep, "risk_assessment")["gap"]
    assert "責任者を指名してください：chat" in _row(rep, "named_owners")["gap"]
    assert rep["summary"]["reassessment_due"] == ["chat"]
    engine.dispose()


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_html_and_markdown_render_in_both_languages(seeded, lang):
    rep = build(seeded, _today(), lang)
    html = render(rep, "html")
    assert f'<html lang="{lang}">' in html
    assert catalog.t("report_title", lang) in html
    for req in catalogue().requirements:
        assert req.title.get(lang) in html
        assert f'id="req-{req.id}"' in html
    assert "@page" in html and "@media print" in html
    other = "en" if lang == "ja" else "ja"
    assert catalog.t("evidence", other) not in html
    md = render(rep, "md")
    assert md.startswith(f"# {catalog.t('report_title', lang)}")
    assert md.count("\n### ") >= 20
    notes = [x["note"] for row in rep["rows"] for fw in FRAMEWORKS
             for x in row["cross_map"][fw] if x["note"]]
    assert notes and all(bool(re.search("[ぁ-んァ-ン一-龥]", n)) == (lang == "ja")
                         for n in notes)


def test_every_label_has_both_languages_and_templates_use_known_labels():
    for key, (en, ja) in catalog.LABELS.items():
        assert en.strip() and ja.strip(), key
    used = set()
    for path in TEMPLATES.glob("*"):
        if path.name.startswith(("report", "systems", "gov_")):
            used |= set(re.findall(r'\bt\("(\w+)",', path.read_text(encoding="utf-8")))
    assert used and used <= set(catalog.LABELS), used - set(catalog.LABELS)
    for code in ("no_approved_assessment", "policy_not_assessed", "policy_changed",
                 "model_not_assessed"):
        assert f"rs_{code}" in catalog.LABELS
    c = catalogue()
    for req in c.requirements:
        for texts in (req.title, req.control, req.gap):
            assert texts.en.strip() and texts.ja.strip(), req.id
    assert len(c.notes["en"]) == len(c.notes["ja"])


ADMIN = "admin-key-report"


def test_api_and_pages(make_server, full_gov_dir):
    from tests.people.helpers import add_person, sign_in, token_for

    srv = make_server(full_gov_dir.root.joinpath("default.yaml").read_text(),
                      policy_dir=full_gov_dir.root)
    auth = {"Authorization": f"Bearer {srv.admin_key}"}
    with TestClient(srv.app) as c:
        systems = c.get("/v1/guardrail/systems", headers=auth).json()
        assert [s["id"] for s in systems["data"]] == ["chat"]
        assert systems["reassessment_due"] == []
        one = c.get("/v1/guardrail/systems/chat", headers=auth).json()
        assert one["owner"]["title"] == "Chief Risk Officer"
        assert [a["id"] for a in one["assessments"]] == ["chat-2025"]
        assert c.get("/v1/guardrail/systems/nope", headers=auth).status_code == 404
        reviewer = token_for(srv, "rev", "reviewer")
        r = c.get("/v1/guardrail/systems", headers={"Authorization": f"Bearer {reviewer}"})
        assert r.status_code == 403
        auditor = token_for(srv, "aud", "auditor")
        today = datetime.now(UTC).date().isoformat()
        rep = c.get("/v1/guardrail/report", params={"from": today, "to": today, "lang": "ja"},
                    headers={"Authorization": f"Bearer {auditor}"})
        assert rep.status_code == 200 and len(rep.json()["rows"]) == 20
        bad = c.get("/v1/guardrail/report", params={"from": "2025-02-01", "to": "2025-01-01"},
                    headers=auth)
        assert bad.status_code == 400
    add_person(srv, "佐藤", "compliance")
    with sign_in(srv, "佐藤") as browser:
        page = browser.get("/governance/report", params={"lang": "ja"})
        assert page.status_code == 200 and "コンプライアンス・レポート" in page.text
        page = browser.get("/governance/report", params={"lang": "en", "from": "x"})
        assert page.status_code == 400 and catalog.t("bad_period", "en") in page.text
        systems_page = browser.get("/governance/systems",
                                   headers={"Accept-Language": "ja-JP,ja;q=0.9"})
        assert systems_page.status_code == 200 and "AIシステム・インベントリ" in systems_page.text
        assert "Chief Risk Officer" in systems_page.text
    add_person(srv, "kato", "reviewer")
    with sign_in(srv, "kato") as browser:
        assert browser.get("/governance/systems").status_code == 403


def test_cli(full_gov_dir, monkeypatch, capsys, tmp_path):
    settings = full_gov_dir.settings()
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("GUARDRAIL_POLICY_DIR", str(full_gov_dir.root))
    assert main(["systems", "list"]) == 0
    assert "chat" in capsys.readouterr().out
    assert main(["systems", "show", "chat"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["reassessment"]["due"] is False and shown["assessments"][0]["approved"]
    assert main(["systems", "show", "nope"]) == 1
    assert main(["systems", "check", "--fail-on-due"]) == 0
    out = tmp_path / "r.json"
    assert main(["report", "--from", "2025-01-01", "--to", "2025-01-31", "--lang", "ja",
                 "--format", "json", "-o", str(out)]) == 0
    rep = json.loads(out.read_text(encoding="utf-8"))
    assert rep["lang"] == "ja" and len(rep["rows"]) == 20
    assert main(["report", "--from", "2025-13-01"]) == 2
    # a broken assessment: check names the file and fails
    full_gov_dir.assessment(risks=[{"description": "r", "likelihood": "low", "impact": "low",
                                    "mitigations": [{"policy": "default",
                                                     "scanner": "nope"}]}])
    capsys.readouterr()
    assert main(["systems", "check"]) == 1
    err = capsys.readouterr().err
    assert "chat-2025.yaml: risks[0].mitigations[0].scanner" in err
