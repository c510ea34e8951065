"""Admin API routes take a person's token with that person's role, or the admin key."""

from __future__ import annotations

import httpx
import pytest

from guardrail.review import service
from tests.people.helpers import people, token_for


def _get(srv, path: str, token: str | None) -> httpx.Response:
    h = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(srv.root_url + path, headers=h)


def _review(srv, inc_id: str, token: str | None, **body) -> httpx.Response:
    h = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{srv.root_url}/v1/guardrail/incidents/{inc_id}/decisions", headers=h,
                      json={"decision": "reject", "reason": "copied", **body})


@pytest.mark.parametrize(("role", "reads", "decides", "admin_routes"), [
    pytest.param("admin", 200, 201, 200, id="admin"),
    pytest.param("reviewer", 200, 201, 403, id="reviewer"),
    pytest.param("auditor", 200, 403, 403, id="auditor"),
    pytest.param("compliance", 200, 403, 403, id="compliance"),
])
def test_token_roles(held, role, reads, decides, admin_routes):
    srv, inc_id = held
    token = token_for(srv, f"p-{role}", role)
    assert _get(srv, "/v1/guardrail/incidents", token).status_code == reads
    assert _get(srv, f"/v1/guardrail/incidents/{inc_id}", token).status_code == reads
    assert _get(srv, "/v1/guardrail/incidents/verify", token).status_code == reads
    assert _get(srv, f"/v1/guardrail/incidents/{inc_id}/reviews", token).status_code == reads
    r = _review(srv, inc_id, token)
    assert r.status_code == decides
    if decides == 403:
        assert r.json()["error"]["code"] == "insufficient_role"
    for path in ("/v1/guardrail/readyz", "/v1/guardrail/corpora"):
        assert _get(srv, path, token).status_code == admin_routes
    hist = service.history(srv.store, inc_id)
    assert [h["reviewer"] for h in hist] == ([f"p-{role}"] if decides == 201 else [])


def test_admin_key_reads_but_a_decision_needs_a_person(held):
    srv, inc_id = held
    assert _get(srv, f"/v1/guardrail/incidents/{inc_id}", srv.admin_key).status_code == 200
    assert _get(srv, "/v1/guardrail/readyz", srv.admin_key).status_code == 200
    r = _review(srv, inc_id, srv.admin_key)
    assert r.status_code == 403 and r.json()["error"]["code"] == "person_required"
    [access] = service.history(srv.store, inc_id, ("access",))
    assert access["reviewer"].startswith("admin-key key_") and access["person_id"] is None


def test_the_reviewer_cannot_be_named_in_the_body(held):
    """The API took any ``reviewer`` name a caller typed; now the token's person decides."""
    srv, inc_id = held
    token = token_for(srv, "kato", "reviewer")
    r = _review(srv, inc_id, token, reviewer="mallory")
    assert r.status_code == 400 and r.json()["error"]["param"] == "reviewer"
    assert _review(srv, inc_id, token).status_code == 201
    assert [h["reviewer"] for h in service.history(srv.store, inc_id)] == ["kato"]


def test_reads_of_one_incident_are_recorded_with_the_person(held):
    srv, inc_id = held
    token = token_for(srv, "佐藤", "auditor")
    assert _get(srv, f"/v1/guardrail/incidents/{inc_id}", token).status_code == 200
    body = _get(srv, f"/v1/guardrail/incidents/{inc_id}/reviews", token).json()
    assert [(a["reviewer"], a["role"]) for a in body["accesses"]] == [("佐藤", "auditor")]
    assert body["data"] == []
    assert _get(srv, "/v1/guardrail/incidents/inc_nope", token).status_code == 404


@pytest.mark.parametrize("who", ["client-key", "disabled", "revoked", "garbage"])
def test_tokens_that_are_not_admin_credentials(held, who):
    srv, inc_id = held
    if who == "client-key":
        token = srv.client_key
    elif who == "garbage":
        token = "gr_pt_not-a-token"
    else:
        token = token_for(srv, "kato", "admin")
        if who == "disabled":
            people(srv).set_disabled("kato", True)
        else:
            people(srv).new_token("kato", replace=True)
    assert _get(srv, "/v1/guardrail/incidents", token).status_code == 401
    assert _review(srv, inc_id, token).status_code == 401


def test_person_tokens_are_not_client_keys(held):
    srv, _ = held
    token = token_for(srv, "kato", "admin")
    r = httpx.post(srv.base_url + "/chat/completions", headers={"Authorization": f"Bearer {token}"},
                   json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401


def test_admin_routes_work_without_an_admin_key(make_server):
    from tests.people.helpers import make_held

    srv, inc_id = make_held(make_server, admin_key=None)
    token = token_for(srv, "root", "admin")
    assert _get(srv, "/v1/guardrail/readyz", token).status_code == 200
    assert _get(srv, "/v1/guardrail/incidents", "admin-test-key").status_code == 401
    assert _get(srv, "/v1/guardrail/incidents", None).json()["error"]["code"] == "missing_api_key"
