"""Review events are links of the incident chain: ``guardrail incidents verify`` covers them."""

from __future__ import annotations

import pytest

from guardrail.cli import main
from guardrail.db import make_engine, upgrade
from guardrail.incidents.store import IncidentDraft, IncidentStore
from guardrail.people.roles import Principal
from guardrail.review import decisions, service

KATO = Principal(name="kato", role="reviewer", via="token", person_id=1)
AUDITOR = Principal(name="aud", role="auditor", via="token", person_id=2)


def draft(i: int) -> IncidentDraft:
    return IncidentDraft(request_id=f"r{i}", system_id="s", policy_name="p", policy_version="v",
                         route="/v1/chat/completions", stage="output", kind="decision",
                         action="hold", evidence={"i": i}, scanners=[], score=0.5,
                         review_status="open")


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """incident 1, decision 2, incident 3, access 4, decision 5 (seq order)."""
    url = f"sqlite:///{tmp_path}/inc.db"
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", url)
    engine = make_engine(url)
    upgrade(url, engine)
    store = IncidentStore(engine)
    [a] = store.append([draft(1)])
    decisions.decide(store, a, decision="escalate", reason="looking", who=KATO,
                     escalate_to="legal")
    store.append([draft(2)])
    service.open_incident(store, a, AUDITOR, "test")
    decisions.decide(store, a, decision="reject", reason="copied lyrics", who=KATO)
    return engine, store, a


def test_events_share_the_incidents_sequence(chain):
    engine, store, a = chain
    with engine.connect() as conn:
        incidents = [r[0] for r in conn.exec_driver_sql("SELECT seq FROM incidents ORDER BY seq")]
        events = conn.exec_driver_sql(
            "SELECT seq, kind, reviewer, role FROM incident_reviews ORDER BY seq").all()
    assert incidents == [1, 3]
    assert [tuple(e) for e in events] == [(2, "decision", "kato", "reviewer"),
                                          (4, "access", "aud", "auditor"),
                                          (5, "decision", "kato", "reviewer")]
    rep = store.verify()
    assert rep.ok and rep.checked == 5 and rep.notes == []


@pytest.mark.parametrize(("sql", "needle"), [
    pytest.param("UPDATE incident_reviews SET note = 'nothing here' WHERE seq = 5",
                 "review event 5 (decision on", id="edited-note"),
    pytest.param("UPDATE incident_reviews SET reviewer = 'mallory' WHERE seq = 2",
                 "does not match its hash", id="edited-reviewer"),
    pytest.param("UPDATE incident_reviews SET to_status = 'released' WHERE seq = 5",
                 "does not match its hash", id="edited-decision"),
    pytest.param("DELETE FROM incident_reviews WHERE seq = 4", "records 4..4 missing",
                 id="deleted-access"),
    pytest.param("DELETE FROM incident_reviews WHERE seq = 5", "tail deleted",
                 id="deleted-last-decision"),
    pytest.param("UPDATE incident_reviews SET seq = NULL, prev_hash = NULL, record_hash = NULL "
                 "WHERE seq = 4", "not sealed but was written after", id="seal-removed"),
    pytest.param("INSERT INTO incident_reviews (incident_id, created_at, kind, reviewer, "
                 "from_status, to_status, note) VALUES ('x', '2026-01-01', 'decision', 'eve', "
                 "'open', 'cleared', '')", "not sealed but was written after", id="inserted"),
    pytest.param("UPDATE incidents SET review_status = 'released' WHERE seq = 1",
                 "is not its last sealed decision", id="incident-status-edited"),
    pytest.param("UPDATE incidents SET reviewer = 'mallory' WHERE seq = 1",
                 "is not its last sealed decision", id="incident-reviewer-edited"),
])
def test_verify_detects_a_tampered_review_event(chain, capsys, sql, needle):
    engine, store, _ = chain
    assert main(["incidents", "verify"]) == 0
    assert "OK: 5 records" in capsys.readouterr().out
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    assert main(["incidents", "verify"]) == 1
    assert needle in capsys.readouterr().err


def test_events_from_before_sealing_are_reported_not_failed(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    upgrade(url, engine)
    store = IncidentStore(engine)
    [a] = store.append([draft(1)])
    with engine.begin() as conn:  # a row as 0003's review log wrote it
        conn.exec_driver_sql(
            "INSERT INTO incident_reviews (incident_id, created_at, reviewer, from_status, "
            f"to_status, note) VALUES ('{a}', '2025-01-01', 'old', 'open', 'cleared', '')")
    decisions.decide(store, a, decision="reject", reason="copied", who=KATO)
    rep = store.verify()
    assert rep.ok and rep.checked == 2
    assert rep.notes == ["1 review event(s) recorded before review events were sealed "
                         "(migration 0005) are not covered"]


def test_only_people_who_may_decide_do(chain):
    from guardrail.errors import PermissionDeniedError

    _, store, a = chain
    with pytest.raises(PermissionDeniedError, match="auditor role"):
        decisions.decide(store, a, decision="release", reason="ok", who=AUDITOR)
    admin_key = Principal(name="admin-key", role="admin", via="admin_key", key_id="key_x")
    with pytest.raises(PermissionDeniedError, match="names a person"):
        decisions.decide(store, a, decision="release", reason="ok", who=admin_key)
    assert store.verify().ok and store.get(a)["review_status"] == "rejected"


def test_postgres_review_events_and_people(tmp_path):
    """Against PostgreSQL in a session time zone that is not UTC (skipped where 127.0.0.1:5432
    is down, unless GUARDRAIL_REQUIRE_SERVICES=1 as in CI): events seal and verify, people and
    sessions work."""
    from guardrail.people.sessions import Sessions
    from guardrail.people.store import PeopleStore
    from tests.services import pg_schema

    with pg_schema("Asia/Tokyo") as url:
        engine = make_engine(url)
        try:
            upgrade(url, engine)
            store = IncidentStore(engine)
            [a] = store.append([draft(1)])
            people = PeopleStore(engine)
            people.add("山田花子", "reviewer", "correct horse battery staple")
            who = people.authenticate("山田花子", "correct horse battery staple")
            sessions = Sessions(people, ttl_s=60, idle_s=60)
            assert sessions.get(sessions.create(who)).principal.name == "山田花子"
            service.open_incident(store, a, who, "test")
            decisions.decide(store, a, decision="release", reason="licensed", who=who)
            rep = store.verify()
            assert rep.ok and rep.checked == 3, rep.problems
            with engine.begin() as c:
                c.exec_driver_sql(
                    "UPDATE incident_reviews SET note = 'x' WHERE kind = 'decision'")
            assert not store.verify().ok
        finally:
            engine.dispose()  # every pooled connection closed: none is left to the collector
