"""Retention purge: content and personal data past retention are removed from the database,
the purge is sealed into the chain, and ``guardrail incidents verify`` stays green (and still
catches edits to purged records)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from guardrail.cli import main
from guardrail.governance import lifecycle, redress, retention
from guardrail.governance.lifecycle import Change
from guardrail.holds.crypto import Keyring
from guardrail.holds.store import HoldStore
from guardrail.review import decisions
from tests.governance.chain_helpers import (  # noqa: F401
    COMPLIANCE,
    REVIEWER,
    chain_fixture,
    draft,
    pg_chain_fixture,
)

LATER = (datetime.now(UTC) + timedelta(days=400)).isoformat()
ORIGIN = redress.Origin("chat", "default", "v1", "/redress", "req_r")


@pytest.fixture
def policies(tmp_path, monkeypatch):
    d = tmp_path / "policies"
    d.mkdir()
    (d / "default.yaml").write_text("name: default\nscanners: []\nincidents:\n"
                                    "  retention_days: 200\n")
    monkeypatch.setenv("GUARDRAIL_POLICY_DIR", str(d))
    return d


@pytest.fixture
def filled(chain, policies):
    """decided (a), open (b), a held response of a, an answered redress intake (its
    incident decided), a closed lifecycle on a; and c, in the lifecycle still."""
    a, b, c = chain.store.append([draft(1), draft(2), draft(3)])
    decisions.decide(chain.store, a, decision="reject", reason="right", who=REVIEWER)
    decisions.decide(chain.store, c, decision="reject", reason="right", who=REVIEWER)
    for step in lifecycle.STEPS:
        lifecycle.change(chain.store, a, Change("done", to=step, owner="ops"), COMPLIANCE)
    lifecycle.change(chain.store, c, Change("looking", to="triage"), COMPLIANCE)
    holds = HoldStore(chain.store, Keyring([Fernet.generate_key()], "test"))
    holds.put(response_id="hr_1", body=b'{"secret": "held words"}', media_type="application/json",
              tenant="acme", api_key_id=None, policy_name="default", request_id="req_1",
              route="/v1/chat/completions", incident_ids=[a], expire_after_minutes=60)
    chain.sql("UPDATE held_responses SET status = 'released'")
    ack, rd = redress.submit(chain.store, redress.Intake(
        incident_id=a, text="私の電話番号が表示されました 090-1234-5678", contact="me@example.jp"),
        ORIGIN)
    redress.answer(chain.store, ack, "Removed. 削除しました。", REVIEWER)
    decisions.decide(chain.store, rd, decision="reject", reason="handled", who=REVIEWER)
    return chain, {"a": a, "b": b, "c": c, "rd": rd, "ack": ack}


def row(chain, inc):
    return chain.store.get(inc)


def test_purge_removes_payloads_and_the_chain_still_verifies(filled, capsys):
    chain, ids = filled
    assert main(["incidents", "verify"]) == 0
    before = chain.scalar("SELECT count(*) FROM incident_reviews")
    assert main(["incidents", "purge", "--dry-run", "--now", LATER]) == 0
    out = capsys.readouterr().out
    assert "would purge: 2 incident(s), 1 held response body(ies), 1 redress intake(s)" in out
    assert "kept 2" in out  # b is open, c is in the lifecycle
    assert chain.scalar("SELECT count(*) FROM incident_reviews") == before
    assert row(chain, ids["a"])["excerpt"] is not None

    assert main(["incidents", "purge", "--now", LATER]) == 0
    out = capsys.readouterr().out
    assert "purged: 2 incident(s), 1 held response body(ies), 1 redress intake(s)" in out
    a, rd = row(chain, ids["a"]), row(chain, ids["rd"])
    assert a["excerpt"] is None and rd["excerpt"] is None
    assert a["evidence"] == {"purged": True, "findings": [
        {"scanner": "pii", "kind": "pii", "category": "phone", "score": 0.9}]}
    assert "090-1234-5678" not in json.dumps(rd, ensure_ascii=False)
    assert rd["evidence"] == {"purged": True, "channel": "api",
                              "linked_incident_ids": [ids["a"]]}  # the ack id went too
    # what stays: ids, action, scores, hashes, review status
    assert (a["action"], a["score"], a["review_status"]) == ("block", 0.9, "rejected")
    assert a["content_sha256"] == "ab" * 32
    for kept in ("b", "c"):
        assert row(chain, ids[kept])["excerpt"] is not None
    assert chain.scalar("SELECT ciphertext FROM held_responses WHERE id = 'hr_1'") is None
    assert chain.scalar("SELECT count(*) FROM redress WHERE text IS NOT NULL OR contact IS NOT "
                        "NULL OR answer IS NOT NULL OR given IS NOT NULL") == 0
    status = redress.public_status(chain.store, ids["ack"])
    assert status["status"] == "answered" and status["answer"] is None
    # the purge is in the chain: the last records, naming what it removed
    with chain.engine.connect() as conn:
        notes = [json.loads(n) for n in conn.exec_driver_sql(
            "SELECT note FROM incident_reviews WHERE kind = 'purge' ORDER BY seq").scalars()]
    assert sorted(r["id"] for r in notes[0]["records"]) == sorted([ids["a"], ids["rd"]])
    assert notes[0]["redress_incidents"] == [ids["rd"]]
    assert notes[1]["held_responses"] == ["hr_1"]
    head = chain.scalar("SELECT last_seq FROM incident_chain_head")
    assert chain.scalar("SELECT max(seq) FROM incident_reviews WHERE kind = 'purge'") == head

    assert main(["incidents", "verify"]) == 0
    assert "chain intact" in capsys.readouterr().out
    # a second run finds nothing more, and records nothing
    assert main(["incidents", "purge", "--now", LATER]) == 0
    assert "purged: 0 incident(s), 0 held" in capsys.readouterr().out
    assert chain.scalar("SELECT last_seq FROM incident_chain_head") == head


@pytest.mark.parametrize(("sql", "needle"), [
    pytest.param("UPDATE incidents SET action = 'allow' WHERE seq = 1",
                 "record 1 (", id="purged-record-action"),
    pytest.param("UPDATE incidents SET excerpt = 'forged' WHERE seq = 1",
                 "does not match its hash", id="purged-record-refilled"),
    pytest.param("UPDATE incidents SET excerpt = 'forged' WHERE seq = 2",
                 "record 2 (", id="kept-record"),
    pytest.param("UPDATE incident_reviews SET note = replace(note, 'retention', 'x') "
                 "WHERE kind = 'purge'", "does not match its hash", id="purge-event-edited"),
    pytest.param("DELETE FROM incident_reviews WHERE kind = 'purge'", "tail deleted",
                 id="purge-events-deleted"),
    pytest.param("UPDATE redress SET answer = 'forged'", "is not the one sealed",
                 id="purged-answer-refilled"),
])
def test_verify_still_catches_edits_after_a_purge(filled, capsys, sql, needle):
    chain, _ = filled
    assert main(["incidents", "purge", "--now", LATER]) == 0
    assert main(["incidents", "verify"]) == 0
    capsys.readouterr()
    chain.sql(sql)
    assert main(["incidents", "verify"]) == 1
    assert needle in capsys.readouterr().err


def test_a_tampered_record_is_not_purged(filled, capsys):
    chain, ids = filled
    chain.sql("UPDATE incidents SET excerpt = 'edited' WHERE seq = 1")
    assert main(["incidents", "purge", "--now", LATER]) == 1
    assert "its content does not match its hash; not purged" in capsys.readouterr().err
    assert row(chain, ids["a"])["excerpt"] == "edited"  # left for verify to report
    assert row(chain, ids["rd"])["excerpt"] is None


def test_retention_floor_and_per_policy_days(filled, policies, capsys):
    chain, ids = filled
    (policies / "default.yaml").write_text("name: default\nscanners: []\nincidents:\n"
                                           "  retention_days: 30\n")
    soon = (datetime.now(UTC) + timedelta(days=100)).isoformat()
    assert main(["incidents", "purge", "--now", soon]) == 0  # 30 days, but never under 183
    assert "purged: 0 incident(s), 0 held" in capsys.readouterr().out
    rules = retention.Retention({"default": 30, "long": 3650}, floor_days=183)
    now = datetime.now(UTC)
    assert rules.cutoff("default", now) == now - timedelta(days=183)
    assert rules.cutoff("long", now) == now - timedelta(days=3650)
    assert rules.cutoff("gone", now) == now - timedelta(days=3650)  # unknown: the longest
    assert row(chain, ids["a"])["excerpt"] is not None


def test_postgres_lifecycle_redress_purge_and_bundle(pg_chain, tmp_path):
    """Lifecycle, redress, purge and a bundle on PostgreSQL (session time zone Asia/Tokyo)."""
    from guardrail.governance import bundle

    store = pg_chain.store
    a, b = store.append([draft(1), draft(2)])
    decisions.decide(store, a, decision="reject", reason="right", who=REVIEWER)
    for step in lifecycle.STEPS:
        lifecycle.change(store, a, Change("s", to=step, owner="ops"), COMPLIANCE)
    lifecycle.change(store, b, Change("x", serious="eu_general"), COMPLIANCE)
    ack, _ = redress.submit(store, redress.Intake(incident_id=a, text="t"), ORIGIN)
    redress.answer(store, ack, "answered", REVIEWER)
    assert store.verify().ok, store.verify().problems
    rep = retention.purge(store, retention.Retention({"default": 200}),
                          now=datetime.now(UTC) + timedelta(days=400))
    assert rep.incidents == 1 and rep.events
    assert store.get(a)["excerpt"] is None
    got = store.verify()
    assert got.ok, got.problems
    bundle.export(store, tmp_path / "b", bundle.Ed25519PrivateKey.generate())
    assert bundle.verify(tmp_path / "b").ok
    pg_chain.sql("UPDATE incident_lifecycle SET status = 'closed'")
    assert not store.verify().ok
