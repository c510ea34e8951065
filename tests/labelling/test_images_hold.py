"""Images whose revised prompt the policy holds or blocks: the signed image is kept (encrypted)
and released to the application later, or refused with OpenAI's content-policy error."""

from __future__ import annotations

import base64

import pytest

from guardrail.people.roles import Principal
from guardrail.review.decisions import decide_with_policy
from tests.labelling.conftest import build_app

POLICY = """
name: default
scanners:
  - type: denylist
    name: watch
    category: banned_term
    action: hold
    terms: ["mascot"]
  - type: denylist
    name: banned
    category: banned_term
    action: block
    terms: ["forbidden-codename"]
labelling:
  images:
    thumbnail: "off"
"""

KATO = Principal(name="kato", role="reviewer", via="token", person_id=1)


@pytest.fixture
def lab(tmp_path, pki, upstream_pki):
    return build_app(tmp_path, pki, upstream_pki, POLICY)


@pytest.mark.parametrize("fmt", [pytest.param("b64_json", id="b64"),
                                 pytest.param("url", id="url")])
async def test_held_image_is_released_signed(lab, fmt) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={
            "model": "img-png", "prompt": "x", "response_format": fmt,
            "fake_revised_prompt": "our company mascot, waving"})
        assert r.status_code == 200, r.text
        g = r.json()["guardrail"]
        assert r.json()["data"] == [] and g["decision"] == "hold"
        rid = g["response_id"]
        assert (await http.get(f"/v1/guardrail/responses/{rid}")).status_code == 202
        [inc] = g["incident_ids"]
        out = await decide_with_policy(lab.state, inc, decision="release", reason="ok", who=KATO)
        assert out.status == "released"
        got = await http.get(f"/v1/guardrail/responses/{rid}")
    assert got.status_code == 200
    [item] = got.json()["data"]
    img = base64.b64decode(item["b64_json"])  # kept as bytes: a URL cache would have expired
    assert img[:8] == b"\x89PNG\r\n\x1a\n" and b"c2pa" in img
    assert item["revised_prompt"] == "our company mascot, waving"


async def test_blocked_image_is_a_content_policy_error(lab) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={
            "model": "img-png", "prompt": "x",
            "fake_revised_prompt": "the forbidden-codename logo"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "content_policy_violation"
    [inc] = r.headers["x-guardrail-incidents"].split(",")
    assert lab.state.store.get(inc)["action"] == "block"
