"""Incident lifecycle: order enforced, every step sealed (who, when, why), serious-incident
reporting clocks, the API, the page and the overdue gauge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from guardrail.cli import main
from guardrail.errors import BadRequestError, ConflictError, PermissionDeniedError
from guardrail.governance import lifecycle
from guardrail.governance.lifecycle import Change
from guardrail.settings import DEFAULT_INCIDENT_CLOCKS
from tests.governance.chain_helpers import (  # noqa: F401
    ADMIN_KEY,
    AUDITOR,
    COMPLIANCE,
    REVIEWER,
    chain_fixture,
    draft,
)
from tests.people.helpers import add_person, sign_in, token_for

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def walk_to_closed(store, inc):
    lifecycle.change(store, inc, Change("looks real", to="triage"), REVIEWER, now=T0)
    lifecycle.change(store, inc, Change("data team", to="owner_assigned", owner="data-team"),
                     COMPLIANCE, now=T0 + timedelta(hours=1))
    for i, step in enumerate(("remediation", "resolved", "closed"), start=2):
        lifecycle.change(store, inc, Change(f"step {step}", to=step), COMPLIANCE,
                         now=T0 + timedelta(hours=i))


def test_each_step_is_sealed_with_who_when_and_why(chain):
    [inc] = chain.store.append([draft(1)])
    walk_to_closed(chain.store, inc)
    got = lifecycle.view(chain.store, inc)
    assert got["status"] == "closed" and got["next"] is None and got["owner"] == "data-team"
    assert [(h["from"], h["to"], h["by"], h["role"]) for h in got["history"]] == [
        ("none", "triage", "kato", "reviewer"),
        ("triage", "owner_assigned", "佐藤", "compliance"),
        ("owner_assigned", "remediation", "佐藤", "compliance"),
        ("remediation", "resolved", "佐藤", "compliance"),
        ("resolved", "closed", "佐藤", "compliance")]
    assert got["history"][0]["at"] == T0.isoformat()
    assert got["history"][1]["reason"] == "data team" and got["history"][1]["owner"] == "data-team"
    # links of the chain itself: seq 2..6 after the incident, and the incident's owner follows
    assert [h["seq"] for h in got["history"]] == [2, 3, 4, 5, 6]
    assert chain.store.get(inc)["owner"] == "data-team"
    rep = chain.store.verify()
    assert rep.ok and rep.checked == 6, rep.problems


@pytest.mark.parametrize(("done", "to"), [
    pytest.param(0, "owner_assigned", id="skip-triage"),
    pytest.param(1, "remediation", id="skip-owner"),
    pytest.param(1, "triage", id="repeat"),
    pytest.param(3, "owner_assigned", id="backwards"),
    pytest.param(5, "triage", id="after-closed"),
    pytest.param(2, "closed", id="skip-to-closed"),
])
def test_order_is_enforced(chain, done, to):
    [inc] = chain.store.append([draft(1)])
    for step in lifecycle.STEPS[:done]:
        lifecycle.change(chain.store, inc, Change("ok", to=step, owner="o"), COMPLIANCE)
    with pytest.raises(ConflictError) as err:
        lifecycle.change(chain.store, inc, Change("skip", to=to, owner="o"), COMPLIANCE)
    assert err.value.code == "lifecycle_order" and err.value.status_code == 409
    assert lifecycle.view(chain.store, inc)["status"] == (lifecycle.STEPS[done - 1]
                                                          if done else "none")
    assert chain.store.verify().ok


def test_roles(chain):
    [inc] = chain.store.append([draft(1)])
    with pytest.raises(PermissionDeniedError, match="auditor"):
        lifecycle.change(chain.store, inc, Change("x", to="triage"), AUDITOR)
    with pytest.raises(PermissionDeniedError, match="names a person"):
        lifecycle.change(chain.store, inc, Change("x", to="triage"), ADMIN_KEY)
    lifecycle.change(chain.store, inc, Change("x", to="triage"), REVIEWER)  # triage: reviewers
    with pytest.raises(PermissionDeniedError, match="reviewer role"):
        lifecycle.change(chain.store, inc, Change("x", to="owner_assigned", owner="o"),
                         REVIEWER)
    with pytest.raises(PermissionDeniedError):  # a serious flag is compliance's
        lifecycle.change(chain.store, inc, Change("x", serious="eu_general"), REVIEWER)
    with pytest.raises(BadRequestError, match="owner"):
        lifecycle.change(chain.store, inc, Change("x", to="owner_assigned"), COMPLIANCE)


def test_serious_clocks_and_reports(chain):
    a, b = chain.store.append([draft(1), draft(2)])
    lifecycle.change(chain.store, a, Change("a customer died", serious="eu_death"), COMPLIANCE,
                     now=T0)
    lifecycle.change(chain.store, b, Change("leak", to="triage", serious="appi"), COMPLIANCE,
                     now=T0)
    zero = {"eu_report": 0, "appi_preliminary": 0, "appi_final": 0}
    assert lifecycle.overdue_clocks(chain.store, T0 + timedelta(days=2)) == zero
    assert lifecycle.overdue_clocks(chain.store, T0 + timedelta(days=4)) == {
        **zero, "appi_preliminary": 1}
    lifecycle.change(chain.store, b, Change("filed with the PPC", reported="appi_preliminary"),
                     COMPLIANCE, now=T0 + timedelta(days=4))
    assert lifecycle.overdue_clocks(chain.store, T0 + timedelta(days=11)) == {
        **zero, "eu_report": 1}
    assert lifecycle.overdue_clocks(chain.store, T0 + timedelta(days=31)) == {
        **zero, "eu_report": 1, "appi_final": 1}
    got = lifecycle.view(chain.store, b, now=T0 + timedelta(days=31))
    assert got["serious"]["kind"] == "appi" and got["serious"]["since"] == T0.isoformat()
    assert {c["clock"]: (c["overdue"], c["reported_at"] is not None)
            for c in got["serious"]["clocks"]} == {"appi_preliminary": (False, True),
                                                   "appi_final": (True, False)}
    with pytest.raises(ConflictError, match="already recorded"):
        lifecycle.change(chain.store, b, Change("again", reported="appi_preliminary"),
                         COMPLIANCE)
    with pytest.raises(BadRequestError, match="clocks"):
        lifecycle.change(chain.store, a, Change("wrong clock", reported="appi_final"),
                         COMPLIANCE)
    # clocks from configuration: a 1-day EU clock makes the flagged incident overdue sooner
    clocks = {**DEFAULT_INCIDENT_CLOCKS, "eu_death": {"eu_report": 1}}
    assert lifecycle.overdue_clocks(chain.store, T0 + timedelta(days=2), clocks)["eu_report"] == 1
    assert chain.store.verify().ok


@pytest.mark.parametrize(("sql", "needle"), [
    pytest.param("UPDATE incident_reviews SET to_status = 'closed' WHERE seq = 3",
                 "does not match its hash", id="edited-step"),
    pytest.param("UPDATE incident_reviews SET reviewer = 'mallory' WHERE seq = 2",
                 "does not match its hash", id="edited-who"),
    pytest.param("UPDATE incident_reviews SET created_at = '2020-01-01 00:00:00' WHERE seq = 2",
                 "does not match its hash", id="edited-when"),
    pytest.param("UPDATE incident_reviews SET note = 'nothing' WHERE seq = 4",
                 "does not match its hash", id="edited-why"),
    pytest.param("DELETE FROM incident_reviews WHERE seq = 3", "records 3..3 missing",
                 id="deleted-step"),
    pytest.param("UPDATE incident_lifecycle SET status = 'closed'",
                 "is not its sealed lifecycle events", id="status-edited"),
    pytest.param("UPDATE incident_lifecycle SET owner = 'someone-else'",
                 "is not its sealed lifecycle events", id="owner-edited"),
    pytest.param("UPDATE incidents SET owner = 'someone-else'",
                 "is not the one its last sealed lifecycle step named", id="incident-owner"),
    pytest.param("UPDATE incident_lifecycle SET serious_kind = NULL",
                 "is not its sealed lifecycle events", id="serious-removed"),
    pytest.param("UPDATE incident_lifecycle SET reported = '{}'",
                 "is not its sealed lifecycle events", id="report-removed"),
    pytest.param("DELETE FROM incident_lifecycle", "no lifecycle record", id="row-deleted"),
])
def test_verify_detects_an_edited_lifecycle(chain, capsys, sql, needle):
    [inc] = chain.store.append([draft(1)])
    lifecycle.change(chain.store, inc, Change("real", to="triage"), REVIEWER)  # seq 2
    lifecycle.change(chain.store, inc, Change("ops", to="owner_assigned", owner="ops"),
                     COMPLIANCE)  # seq 3
    lifecycle.change(chain.store, inc, Change("leak", serious="appi",
                                              reported="appi_preliminary"), COMPLIANCE)  # 4, 5
    assert main(["incidents", "verify"]) == 0
    assert "OK: 5 records" in capsys.readouterr().out
    chain.sql(sql)
    assert main(["incidents", "verify"]) == 1
    assert needle in capsys.readouterr().err


# -- over HTTP ---------------------------------------------------------------------------

def test_api_page_and_gauge(make_server):
    srv = make_server()
    [inc, other] = srv.store.append([draft(1), draft(2)])
    rev, comp = token_for(srv, "kato", "reviewer"), token_for(srv, "sato", "compliance")
    aud = token_for(srv, "aud", "auditor")
    url = f"{srv.base_url}/guardrail/incidents/{inc}/lifecycle"
    with httpx.Client(timeout=30) as c:
        def post(token, **body):
            return c.post(url, json=body, headers={"Authorization": f"Bearer {token}"})

        r = post(rev, to="triage", reason="customer complaint")
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "triage" and r.json()["history"][0]["by"] == "kato"
        r = post(comp, to="remediation", reason="skip")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "lifecycle_order"
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert post(rev, to="owner_assigned", reason="x", owner="o").status_code == 403
        assert post(aud, to="owner_assigned", reason="x", owner="o").status_code == 403
        assert post(srv.admin_key, to="owner_assigned", reason="x",
                    owner="o").status_code == 403  # no person
        r = post(comp, to="owner_assigned", reason="ops owns it", owner="ops",
                 serious={"kind": "eu_general"})
        assert r.status_code == 201 and r.json()["serious"]["kind"] == "eu_general"
        assert post(comp, serious={"kind": "martian"}, reason="x").status_code == 400
        r = c.get(url, headers={"Authorization": f"Bearer {aud}"})
        assert r.status_code == 200 and r.json()["status"] == "owner_assigned"
        # an old serious flag on the other incident: its EU clock has run out
        lifecycle.change(srv.store, other, Change("widespread", serious="eu_widespread"),
                         COMPLIANCE, now=datetime.now(UTC) - timedelta(days=3))
        lifecycle.setup(srv.state)
        lifecycle.setup(srv.state)  # once per app, however often called
        metrics = c.get(f"{srv.root_url}/metrics").text
        assert 'guardrail_incidents_overdue{clock="eu_report"} 1.0' in metrics
        assert 'guardrail_incidents_overdue{clock="appi_final"} 0.0' in metrics
    add_person(srv, "hanako", "compliance")
    add_person(srv, "rev2", "reviewer")
    with sign_in(srv, "hanako", headers={"Accept-Language": "ja"}) as b:
        r = b.get("/governance/incidents")
        assert r.status_code == 200 and r.headers["content-language"] == "ja"
        assert inc in r.text and other in r.text and "報告期限" in r.text
        assert 'data-clock="eu_report">1<' in r.text
    with sign_in(srv, "rev2") as b:
        r = b.get("/governance/incidents")
        assert r.status_code == 403 and "admin or compliance" in r.text
    with httpx.Client(base_url=srv.root_url) as anon:
        r = anon.get("/governance/incidents")
        assert r.status_code == 303 and r.headers["location"] == "/review/login"
    assert srv.store.verify().ok
