"""People on a running test server: accounts, tokens, signing in over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest

from guardrail.people.store import PeopleStore

PASSWORD = "correct horse battery staple"

HOLD_POLICY = """
name: default
scanners:
  - type: denylist
    name: banned
    category: banned_term
    action: hold
    terms: ["forbidden-codename"]
"""


def people(srv) -> PeopleStore:
    return PeopleStore(srv.store.engine)


def add_person(srv, name: str, role: str, password: str | None = PASSWORD) -> None:
    people(srv).add(name, role, password)


def token_for(srv, name: str, role: str | None = None) -> str:
    if role is not None:
        add_person(srv, name, role)
    return people(srv).new_token(name)[1]


def csrf_in(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]*)"', html)
    assert m, "no csrf_token field in the page"
    return m.group(1)


@contextmanager
def sign_in(srv, name: str, password: str = PASSWORD, **client_kw) -> Iterator[httpx.Client]:
    """A browser-like client, signed in (asserts the redirect to the queue)."""
    with httpx.Client(base_url=srv.root_url, **client_kw) as c:
        r = post_login(c, name, password)
        assert r.status_code == 303 and r.headers["location"] == "/review", r.text
        yield c


def post_login(c: httpx.Client, name: str, password: str) -> httpx.Response:
    token = csrf_in(c.get("/review/login").text)
    return c.post("/review/login", data={"name": name, "password": password,
                                         "csrf_token": token})


def make_held(make_server, **overrides):
    srv = make_server(HOLD_POLICY, **overrides)
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    resp = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "About forbidden-codename: yes."}])
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "hold"
    return srv, g["incident_ids"][0]


@pytest.fixture
def held(make_server):
    """A running server with one held incident: (server, incident id)."""
    return make_held(make_server)
