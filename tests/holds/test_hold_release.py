"""Hold and release through the real server: the openai SDK is held, a person decides, the
application fetches its response (or is told it never will)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from sqlalchemy import update

from guardrail.holds.models import HeldResponseRow
from tests.conftest import CLIENT_KEY
from tests.mocks.clients import collect
from tests.people.helpers import token_for

OTHER_KEY = "sk-other-tenant-key"

POLICY = """
name: default
review:
  four_eyes: {four_eyes}
hold:
  expire_after_minutes: 60
  on_expiry: {on_expiry}
scanners:
  - type: denylist
    name: banned
    category: banned_term
    action: hold
    terms: ["forbidden-codename"]
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{{20,}}']
"""

SAID = ("The plan for forbidden-codename is ready; the key is sk-abcdefghijklmnopqrstuvwx "
        "and the launch is on Friday.")


@pytest.fixture
def hold_server(make_server):
    def start(four_eyes: str = "[]", on_expiry: str = "reject", **kw):
        keys = [{"key": CLIENT_KEY, "tenant": "acme", **kw.pop("webhook", {})},
                {"key": OTHER_KEY, "tenant": "globex"}]
        return make_server(POLICY.format(four_eyes=four_eyes, on_expiry=on_expiry),
                           api_keys=keys, **kw)
    return start


def sdk(srv, key: str = CLIENT_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0)


def held(srv, stream: bool = False) -> tuple[str, str, str]:
    """Ask for a held answer: (response_id, incident id, the text the client received)."""
    msgs = [{"role": "user", "content": SAID}]
    if stream:
        text, finish, g = collect(sdk(srv).chat.completions.create(
            model="echo", messages=msgs, stream=True))
    else:
        r = sdk(srv).chat.completions.create(model="echo", messages=msgs)
        text, finish, g = r.choices[0].message.content or "", r.choices[0].finish_reason, \
            r.model_extra["guardrail"]
    assert finish == "content_filter" and g["decision"] == "hold"
    [inc] = [i for i in g["incident_ids"] if srv.store.get(i)["action"] == "hold"]
    return g["response_id"], inc, text


def fetch(srv, rid: str, key: str = CLIENT_KEY) -> httpx.Response:
    return httpx.get(f"{srv.base_url}/guardrail/responses/{rid}",
                     headers={"Authorization": f"Bearer {key}"})


def decide(srv, inc: str, token: str, decision: str, reason: str = "checked: licensed",
           **extra) -> httpx.Response:
    return httpx.post(f"{srv.base_url}/guardrail/incidents/{inc}/decisions",
                      headers={"Authorization": f"Bearer {token}"},
                      json={"decision": decision, "reason": reason, **extra})


@pytest.mark.parametrize("stream", [pytest.param(False, id="json"),
                                    pytest.param(True, id="stream")])
def test_held_response_is_released_whole_to_its_application(hold_server, stream):
    srv = hold_server()
    rid, inc, got = held(srv, stream)
    assert "forbidden-codename" not in got and "Friday" not in got  # nothing of it went out
    pending = fetch(srv, rid)
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    r = decide(srv, inc, token_for(srv, "山田花子", "reviewer"), "release")
    assert r.status_code == 201 and r.json()["status"] == "released"
    assert r.json()["response"]["status"] == "released"
    # the application, with the openai SDK's own key and client
    body = sdk(srv).get(f"/guardrail/responses/{rid}", cast_to=httpx.Response).json()
    msg = body["choices"][0]["message"]["content"]
    assert msg == SAID.replace("sk-abcdefghijklmnopqrstuvwx", "<CREDENTIAL>")
    assert body["object"] == "chat.completion" and body["guardrail"]["decision"] == "released"
    assert body["guardrail"]["response_id"] == rid
    assert srv.store.verify().ok


def held_stream(srv, **extra) -> tuple[str, str, dict, list]:
    """A held stream read with the openai SDK: (response_id, hold incident, guardrail summary,
    the chunks received)."""
    chunks = list(sdk(srv).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": SAID}], stream=True,
        extra_body=extra))
    g = [c.model_extra["guardrail"] for c in chunks if (c.model_extra or {}).get("guardrail")][-1]
    assert g["decision"] == "hold"
    [inc] = [i for i in g["incident_ids"] if srv.store.get(i)["action"] == "hold"]
    return g["response_id"], inc, g, chunks


@pytest.mark.parametrize("piece", [1, 2, 5, 13, 50])
def test_a_held_stream_at_any_chunking_releases_nothing_then_the_whole_answer(hold_server,
                                                                               piece):
    srv = hold_server()
    rid, inc, _, chunks = held_stream(srv, fake_piece=piece)
    sent = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert "forbidden" not in sent and "codename" not in sent and "Friday" not in sent
    assert "sk-abc" not in sent
    assert [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason] == [
        "content_filter"]
    rec = srv.store.get(inc)  # the incident: the hold, its term, no secret in clear
    assert rec["action"] == "hold" and rec["stage"] == "stream_window"
    assert "sk-abcdefghijklmnopqrstuvwx" not in json.dumps(rec)
    assert decide(srv, inc, token_for(srv, "kato", "reviewer"), "release").status_code == 201
    body = fetch(srv, rid).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == (
        SAID.replace("sk-abcdefghijklmnopqrstuvwx", "<CREDENTIAL>"))


@pytest.mark.parametrize("piece", [1, 4, 50])
def test_a_held_stream_keeps_its_tool_call_redacted(hold_server, piece):
    srv = hold_server()
    args = json.dumps({"token": "sk-zyxwvutsrqponmlkjihgfedcba", "q": "launch date"})
    rid, inc, g, chunks = held_stream(srv, fake_piece=piece, fake_tool_args=args)
    for c in chunks:  # no argument of the held call went out either
        for ch in c.choices:
            assert not ch.delta.tool_calls or not any(
                "zyxw" in (t.function.arguments or "") for t in ch.delta.tool_calls)
    incidents = [srv.store.get(i) for i in g["incident_ids"]]
    assert {r["action"] for r in incidents} >= {"hold", "redact"}
    assert "zyxw" not in json.dumps(incidents)  # the tool call's secret is not stored either
    assert decide(srv, inc, token_for(srv, "kato", "reviewer"), "release").status_code == 201
    msg = fetch(srv, rid).json()["choices"][0]["message"]
    assert "forbidden-codename" in msg["content"] and "sk-abc" not in msg["content"]
    [call] = msg["tool_calls"]
    assert call["function"]["name"] == "lookup" and call["id"] == "call_1"
    assert json.loads(call["function"]["arguments"]) == {"token": "<CREDENTIAL>",
                                                        "q": "launch date"}
    assert "zyxw" not in json.dumps(fetch(srv, rid).json())


def test_the_held_body_is_encrypted_at_rest(hold_server):
    srv = hold_server()
    rid, _, _ = held(srv)
    with srv.store.sessions() as s:
        row = s.get(HeldResponseRow, rid)
        assert row is not None and row.ciphertext is not None
        assert b"Friday" not in row.ciphertext and b"codename" not in row.ciphertext
        assert row.key_id.startswith("hk_") and row.tenant == "acme"


def test_rejected_is_gone_other_tenants_and_unknown_ids_are_not_found(hold_server):
    srv = hold_server()
    rid, inc, _ = held(srv)
    assert fetch(srv, rid, OTHER_KEY).status_code == 404
    assert fetch(srv, "hr_nope").status_code == 404
    assert fetch(srv, rid, "sk-wrong").status_code == 401
    r = decide(srv, inc, token_for(srv, "kato", "reviewer"), "reject", "copied lyrics")
    assert r.status_code == 201 and r.json()["status"] == "rejected"
    gone = fetch(srv, rid)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "response_rejected"
    with srv.store.sessions() as s:  # a rejected body is not kept
        assert s.get(HeldResponseRow, rid).ciphertext is None


def test_decisions_api_errors(hold_server):
    srv = hold_server()
    _, inc, _ = held(srv)
    kato = token_for(srv, "kato", "reviewer")
    no_reason = decide(srv, inc, kato, "release", reason="")
    assert no_reason.status_code == 400 and no_reason.json()["error"]["param"] == "reason"
    assert decide(srv, inc, kato, "approve").status_code == 400
    assert decide(srv, inc, kato, "escalate").json()["error"]["param"] == "escalate_to"
    aud = decide(srv, inc, token_for(srv, "aud", "auditor"), "release")
    assert aud.status_code == 403
    assert decide(srv, inc, srv.admin_key, "release").json()["error"]["code"] == \
        "person_required"
    assert decide(srv, "inc_missing", kato, "release").status_code == 404
    assert httpx.post(f"{srv.base_url}/guardrail/incidents/{inc}/decisions",
                      json={"decision": "release", "reason": "x"}).status_code == 401
    assert srv.store.get(inc)["review_status"] == "open"


def test_double_submission_and_a_second_reviewer(hold_server):
    srv = hold_server()
    rid, inc, _ = held(srv)
    kato, sato = token_for(srv, "kato", "reviewer"), token_for(srv, "sato", "reviewer")
    assert decide(srv, inc, kato, "escalate", escalate_to="legal").status_code == 201
    assert srv.store.get(inc)["assignee"] == "legal"
    first = decide(srv, inc, kato, "release")
    again = decide(srv, inc, kato, "release")  # the same form sent twice
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created"] is False
    for decision in ("reject", "release"):
        late = decide(srv, inc, sato, decision)
        assert late.status_code == 409 and late.json()["error"]["code"] == "already_decided"
        assert "kato" in late.json()["error"]["message"]
    hist = httpx.get(f"{srv.base_url}/guardrail/incidents/{inc}/reviews",
                     headers={"Authorization": f"Bearer {kato}"}).json()["data"]
    assert [(h["from"], h["to"], h["reviewer"]) for h in hist] == [
        ("open", "escalated", "kato"), ("escalated", "released", "kato")]
    assert fetch(srv, rid).status_code == 200 and srv.store.verify().ok


def test_concurrent_decisions_one_wins(hold_server):
    srv = hold_server()
    _, inc, _ = held(srv)
    tokens = [token_for(srv, f"r{i}", "reviewer") for i in range(4)]
    out: list[int] = []
    barrier = threading.Barrier(len(tokens))

    def go(tok: str, decision: str) -> None:
        barrier.wait()
        out.append(decide(srv, inc, tok, decision).status_code)

    threads = [threading.Thread(target=go, args=(t, "release" if i % 2 else "reject"))
               for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [201, 409, 409, 409]
    assert srv.store.verify().ok


def test_four_eyes_release_needs_a_second_reviewer(hold_server):
    srv = hold_server(four_eyes="[banned]")
    rid, inc, _ = held(srv)
    kato, sato = token_for(srv, "kato", "reviewer"), token_for(srv, "sato", "reviewer")
    one = decide(srv, inc, kato, "release")
    assert one.status_code == 201 and one.json()["status"] == "awaiting_second"
    assert fetch(srv, rid).status_code == 202
    same = decide(srv, inc, kato, "release")
    assert same.status_code == 409 and same.json()["error"]["code"] == \
        "second_reviewer_required"
    two = decide(srv, inc, sato, "release")
    assert two.status_code == 201 and two.json()["status"] == "released"
    assert fetch(srv, rid).status_code == 200


@pytest.mark.parametrize(("on_expiry", "status", "http"), [
    pytest.param("reject", "rejected", 410, id="reject"),
    pytest.param("release", "released", 200, id="release")])
def test_expired_holds_are_decided_by_the_system(hold_server, on_expiry, status, http):
    import asyncio

    from guardrail.review.decisions import expire_due

    srv = hold_server(on_expiry=on_expiry)
    rid, inc, _ = held(srv)
    assert asyncio.run(expire_due(srv.state)) == 0  # not yet due
    with srv.store.sessions.begin() as s:
        s.execute(update(HeldResponseRow).where(HeldResponseRow.id == rid)
                  .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert asyncio.run(expire_due(srv.state)) == 1
    rec = srv.store.get(inc)
    assert (rec["review_status"], rec["reviewer"]) == (status, "system")
    r = fetch(srv, rid)
    assert r.status_code == http
    if http == 410:
        assert "expired" in r.json()["error"]["message"]
    assert srv.store.verify().ok


def test_webhook_is_signed_retried_and_every_attempt_recorded(hold_server, webhook_receiver):
    from guardrail.holds import webhooks

    webhook_receiver.fail_first = 1  # the first attempt answers 500
    srv = hold_server(webhook={"webhook_url": webhook_receiver.url, "webhook_secret": "whsec"},
                      webhook_backoff_s=0.05)
    rid, inc, _ = held(srv)
    decide(srv, inc, token_for(srv, "kato", "reviewer"), "release")
    deadline = time.monotonic() + 10
    while len(webhook_receiver.calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(webhook_receiver.calls) == 2
    for body, headers in webhook_receiver.calls:
        assert webhooks.verify("whsec", headers["guardrail-signature"], body)
        assert not webhooks.verify("other", headers["guardrail-signature"], body)
        assert not webhooks.verify("whsec", headers["guardrail-signature"], body + b" ")
    import json

    sent = json.loads(webhook_receiver.calls[-1][0])
    assert sent["type"] == "held_response.released" and sent["data"]["id"] == rid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tries = webhooks.attempts(srv.state, rid)
        if len(tries) == 2:
            break
        time.sleep(0.05)
    assert [(a["attempt"], a["status_code"], a["ok"]) for a in tries] == [
        (1, 500, False), (2, 200, True)]
    assert tries[0]["delivery_id"] == tries[1]["delivery_id"]


def test_signature_refuses_old_timestamps():
    from guardrail.holds import webhooks

    header = webhooks.sign("s", b"{}", t=int(time.time()) - 3600)
    assert not webhooks.verify("s", header, b"{}")
    assert webhooks.verify("s", header, b"{}", tolerance_s=7200)


def test_review_metrics(hold_server):
    srv = hold_server()
    _, inc, _ = held(srv)
    held(srv)
    decide(srv, inc, token_for(srv, "kato", "reviewer"), "reject", "copied")
    text = httpx.get(f"{srv.root_url}/metrics").text
    assert 'guardrail_review_queue{status="open"} 1.0' in text
    assert 'guardrail_review_queue{status="rejected"} 1.0' in text
    assert 'guardrail_held_responses{status="pending"} 1.0' in text
    assert 'guardrail_held_responses{status="rejected"} 1.0' in text
    assert 'guardrail_review_decisions_total{by="person",decision="reject",scanner="banned"} 1.0' \
        in text
    assert 'guardrail_review_time_to_decision_seconds_count{scanner="banned"} 1.0' in text
    assert "guardrail_review_overdue 0.0" in text
    with srv.store.sessions.begin() as s:  # an SLA of a day: make one incident two days old
        from guardrail.incidents.models import IncidentRow

        s.execute(update(IncidentRow).where(IncidentRow.review_status == "open")
                  .values(created_at=datetime.now(UTC) - timedelta(days=2)))
    assert "guardrail_review_overdue 1.0" in httpx.get(f"{srv.root_url}/metrics").text
