"""Redress: intake (API and the public form) -> its own incident in the review queue, linked
to the contested ones -> answered by a person (sealed) -> the complainant sees status and
answer by acknowledgement id, and nothing else. Rate limits, CSRF, verify."""

from __future__ import annotations

import re

import httpx
import pytest

from guardrail.cli import main
from guardrail.errors import ConflictError, PermissionDeniedError
from guardrail.governance import redress
from guardrail.review import service
from tests.api.formats import error_problem
from tests.governance.chain_helpers import (  # noqa: F401
    ADMIN_KEY,
    AUDITOR,
    COMPLIANCE,
    REVIEWER,
    chain_fixture,
    draft,
    held_response_fixture,
)
from tests.people.helpers import token_for

PUBLIC_KEYS = {"id", "object", "status", "received_at", "answer", "answered_at"}
ORIGIN = redress.Origin("chat", "default", "v1", "/v1/guardrail/redress", "req_x")


def csrf_in(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert m, html
    return m.group(1)


def redress_incidents(store):
    return store.list(filters={"kind": "redress"})


def test_intake_queue_answer_and_what_the_complainant_sees(held_response):
    srv, inc = held_response
    rid = srv.store.get(inc)["evidence"]["response_id"]
    rev, aud = token_for(srv, "kato", "reviewer"), token_for(srv, "aud", "auditor")
    text = "私の質問への回答が誤って保留されました。 My answer was held for no reason."
    with httpx.Client(base_url=srv.base_url, timeout=30) as c:
        r = c.post("/guardrail/redress", json={"response_id": rid, "text": text,
                                                "contact": "taro@example.jp"})
        assert r.status_code == 201, r.text
        ack = r.json()["id"]
        assert re.fullmatch(r"rd_[0-9a-f]{32}", ack) and r.json()["status"] == "received"

        # its own incident, open, in the review queue, linked to the held one
        [rd] = redress_incidents(srv.store)
        assert (rd["review_status"], rd["action"], rd["stage"]) == ("open", "flag", "redress")
        assert rd["excerpt"] == text and rd["tenant"] == srv.store.get(inc)["tenant"]
        assert rd["evidence"] == {"ack_id": ack, "channel": "api",
                                  "linked_incident_ids": [inc]}
        view = service.queue(srv.store, service.QueueFilter(show="open"), lambda _r: False)
        assert rd["id"] in [row["id"] for row in view.rows]
        assert srv.store.get(inc)["redress"][0]["incident_id"] == rd["id"]

        # the complainant's view: status and answer, nothing else
        got = c.get(f"/guardrail/redress/{ack}").json()
        assert set(got) == PUBLIC_KEYS and got["status"] == "received" and got["answer"] is None
        body = c.get(f"/guardrail/redress/{ack}").text
        for secret in (inc, rd["id"], rid, "taro@example.jp", "保留"):
            assert secret not in body
        service.open_incident(srv.store, rd["id"], REVIEWER, "test")  # a person looks at it
        assert c.get(f"/guardrail/redress/{ack}").json()["status"] == "in_review"

        def answer(token, text):
            return c.post(f"/guardrail/redress/{ack}/answer", json={"answer": text},
                          headers={"Authorization": f"Bearer {token}"})

        assert answer(aud, "no").status_code == 403
        assert answer(srv.admin_key, "no").status_code == 403  # an answer names a person
        assert c.post(f"/guardrail/redress/{ack}/answer",
                      json={"answer": "no"}).status_code == 401
        r = answer(rev, "We reviewed it: the hold was a mistake, it is released. 申し訳ありません")
        assert r.status_code == 200 and r.json()["answered_by"] == "kato"
        assert answer(rev, "again").status_code == 409
        got = c.get(f"/guardrail/redress/{ack}").json()
        assert got["status"] == "answered" and "申し訳ありません" in got["answer"]
        assert set(got) == PUBLIC_KEYS
        for other in ("rd_" + "0" * 32, "inc_x", rd["id"], "rd_short"):
            r = c.get(f"/guardrail/redress/{other}")
            assert r.status_code == 404 and error_problem(404, r.headers["content-type"],
                                                          r.content) is None
    rep = srv.store.verify()
    assert rep.ok, rep.problems


def test_ids_that_find_nothing_are_accepted_and_not_sealed(chain):
    ack, rd_id = redress.submit(chain.store, redress.Intake(
        incident_id="inc_doesnotexist", request_id="req_nope", text=""), ORIGIN)
    row = chain.store.get(rd_id)
    assert row["evidence"]["linked_incident_ids"] == [] and row["excerpt"] is None
    assert "inc_doesnotexist" not in str(row)
    assert redress.public_status(chain.store, ack)["status"] == "received"
    with pytest.raises(Exception, match="Say what you contest"):
        redress.submit(chain.store, redress.Intake(text="   "), ORIGIN)


def test_linked_by_incident_id_and_request_id(chain):
    a, b = chain.store.append([draft(1), draft(2, request_id="req_shared")])
    _, rd_id = redress.submit(chain.store, redress.Intake(
        incident_id=a, request_id="req_shared", text="both"), ORIGIN)
    assert chain.store.get(rd_id)["evidence"]["linked_incident_ids"] == sorted([a, b])
    assert chain.store.get(rd_id)["system_id"] == "chat"


def test_answer_roles(chain):
    ack, _ = redress.submit(chain.store, redress.Intake(text="wrong"), ORIGIN)
    for who in (AUDITOR, ADMIN_KEY):
        with pytest.raises(PermissionDeniedError):
            redress.answer(chain.store, ack, "x", who)
    redress.answer(chain.store, ack, "compliance answers too", COMPLIANCE)
    with pytest.raises(ConflictError):
        redress.answer(chain.store, ack, "twice", REVIEWER)


@pytest.mark.parametrize(("sql", "needle"), [
    pytest.param("UPDATE redress SET answer = 'We did nothing wrong.'",
                 "is not the one sealed", id="answer-edited"),
    pytest.param("UPDATE redress SET answer = NULL", "no purge removed it", id="answer-removed"),
    pytest.param("UPDATE redress SET answered_by = 'boss'", "is not the sealed one",
                 id="answerer-edited"),
    pytest.param("UPDATE incident_reviews SET note = 'answered: sha256=" + "0" * 64 + "'",
                 "does not match its hash", id="sealed-answer-edited"),
    pytest.param("DELETE FROM incident_reviews WHERE kind = 'redress'", "tail deleted",
                 id="sealed-answer-deleted"),
])
def test_verify_detects_an_edited_answer(chain, capsys, sql, needle):
    ack, _ = redress.submit(chain.store, redress.Intake(text="wrong"), ORIGIN)
    redress.answer(chain.store, ack, "Sorry: fixed.", REVIEWER)
    assert main(["incidents", "verify"]) == 0
    capsys.readouterr()
    chain.sql(sql)
    assert main(["incidents", "verify"]) == 1
    assert needle in capsys.readouterr().err


def test_the_public_form_in_japanese_and_english(make_server):
    srv = make_server()
    with httpx.Client(base_url=srv.root_url, timeout=30) as b:
        r = b.get("/redress", headers={"Accept-Language": "ja,en;q=0.5"})
        assert r.status_code == 200 and r.headers["content-language"] == "ja"
        assert "異議申立て" in r.text
        assert b.get("/redress?lang=en").headers["content-language"] == "en"
        assert b.get("/redress", headers={"Accept-Language": "en-GB,ja;q=0.3"}
                     ).headers["content-language"] == "en"
        token = csrf_in(r.text)
        r = b.post("/redress?lang=ja", data={"csrf_token": token, "text": "<b>差別的な回答</b>",
                                             "incident_id": ""})
        assert r.status_code == 201, r.text
        ack = re.search(r'id="ack">(rd_[0-9a-f]{32})<', r.text).group(1)
        assert r.headers["referrer-policy"] == "no-referrer"
        [rd] = redress_incidents(srv.store)
        assert rd["evidence"]["channel"] == "web" and rd["excerpt"] == "<b>差別的な回答</b>"
        redress.answer(srv.store, ack, "<script>alert(1)</script> 対応しました", REVIEWER)
        r = b.get(f"/redress/status?id={ack}&lang=ja")
        assert r.status_code == 200 and "回答済み" in r.text and "対応しました" in r.text
        assert "<script>alert(1)" not in r.text and "&lt;script&gt;" in r.text
        assert r.headers["cache-control"] == "no-store"
        assert "差別的" not in r.text  # their own words are not shown back either
        r = b.get("/redress/status?id=rd_" + "f" * 32 + "&lang=en")
        assert r.status_code == 404 and "No request has this id" in r.text


@pytest.mark.parametrize("how", ["no-cookie", "wrong-token", "no-token"])
def test_a_form_without_its_csrf_token_is_refused(make_server, how):
    srv = make_server()
    with httpx.Client(base_url=srv.root_url, timeout=30) as b:
        token = csrf_in(b.get("/redress?lang=en").text)
        data = {"text": "please look", "csrf_token": token}
        if how == "no-cookie":
            b.cookies.clear()
        elif how == "wrong-token":
            data["csrf_token"] = "x" * 43
        else:
            del data["csrf_token"]
        r = b.post("/redress?lang=en", data=data)
        assert r.status_code == 400 and 'data-code="csrf"' in r.text
        assert "please look" in r.text  # what they wrote is kept for the retry
    assert redress_incidents(srv.store) == []


def test_rate_limits(make_server):
    srv = make_server(redress_max_per_window=2, redress_lookups_per_window=3)
    with httpx.Client(base_url=srv.root_url, timeout=30) as c:
        for _ in range(2):
            assert c.post("/v1/guardrail/redress", json={"text": "t"}).status_code == 201
        r = c.post("/v1/guardrail/redress", json={"text": "t"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert error_problem(429, r.headers["content-type"], r.content) is None
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        token = csrf_in(c.get("/redress").text)  # the form shares the intake budget
        r = c.post("/redress", data={"csrf_token": token, "text": "t"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        assert 'data-code="limited"' in r.text
        for _ in range(3):
            assert c.get("/v1/guardrail/redress/rd_" + "0" * 32).status_code == 404
        r = c.get("/redress/status?id=rd_" + "0" * 32)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert len(redress_incidents(srv.store)) == 2
