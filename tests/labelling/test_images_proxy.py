"""Images through the proxy: signed with C2PA, read back with c2pa's own Reader."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import c2pa
import pytest

from tests.labelling.conftest import LabApp
from tests.labelling.fakes import FORMATS, make_image, tamper

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def read(data: bytes, mime: str, anchors: bytes | None) -> tuple[str, dict[str, Any], dict]:
    """Read with c2pa directly (not through guardrail's verify code)."""
    settings = {"trust": {"user_anchors": anchors.decode()}} if anchors else {}
    ctx = c2pa.Context.from_dict(settings)
    with c2pa.Reader(mime, io.BytesIO(data), None, ctx) as r:
        return r.get_validation_state(), r.get_active_manifest(), json.loads(r.json())


def created_action(manifest: dict[str, Any]) -> dict[str, Any]:
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))
    return actions["data"]["actions"][0]


@pytest.mark.parametrize("fmt", [pytest.param(f, id=f) for f in FORMATS])
async def test_generation_is_signed_and_trusted(lab: LabApp, fmt: str) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations",
                            json={"model": f"img-{fmt}", "prompt": "a red square", "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-ai-generated"] == "true"
    assert r.headers["x-guardrail-ai-model"] == f"img-{fmt}"
    assert r.headers["x-guardrail-c2pa"] == "signed"
    g = body["guardrail"]
    assert g["c2pa"]["signed"] == 2 and g["disclosure"]["ai_generated"] is True
    assert len(body["data"]) == 2 and all("url" not in d for d in body["data"])
    for item in body["data"]:
        signed = base64.b64decode(item["b64_json"])
        state, manifest, _ = read(signed, FORMATS[fmt][1], lab.pki.ca.read_bytes())
        assert state == "Trusted"
        act = created_action(manifest)
        assert act["action"] == "c2pa.created"
        assert act["digitalSourceType"] == TRAINED
        assert act["softwareAgent"]["name"] == f"img-{fmt}"
        assert manifest["claim_generator_info"][0]["name"] == "guardrail"
        custom = next(a for a in manifest["assertions"] if a["label"] == "org.guardrail.policy")
        assert custom["data"]["policy"] == "default"
        assert custom["data"]["policy_version"] == g["policy_version"]
        assert custom["data"]["request_id"] == g["request_id"]
        assert "thumbnail" not in manifest  # thumbnail: off


async def test_without_the_anchor_the_signature_is_valid_but_untrusted(lab: LabApp) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={"model": "img-png", "prompt": "x"})
    state, _, _ = read(base64.b64decode(r.json()["data"][0]["b64_json"]), "image/png", None)
    assert state == "Valid"


async def test_url_response_is_fetched_signed_and_served(lab: LabApp) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={
            "model": "img-jpeg", "prompt": "x", "response_format": "url"})
        assert r.status_code == 200, r.text
        url = r.json()["data"][0]["url"]
        assert url.startswith("http://proxy.test/v1/guardrail/images/img_")
        assert "b64_json" not in r.json()["data"][0]
        fetched = [q for q in lab.upstream.requests if q.url.host == "images.upstream.test"]
        assert fetched and "authorization" not in fetched[-1].headers  # no upstream key leak
        img = await http.get(url)
        missing = await http.get("/v1/guardrail/images/img_doesnotexist")
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    state, manifest, _ = read(img.content, "image/jpeg", lab.pki.ca.read_bytes())
    assert state == "Trusted" and created_action(manifest)["action"] == "c2pa.created"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_edits_multipart_is_passed_through_and_signed(lab: LabApp) -> None:
    src = make_image("png")
    async with lab.client() as http:
        r = await http.post("/v1/images/edits", data={"model": "img-webp", "prompt": "bluer"},
                            files={"image": ("in.png", src, "image/png")})
    assert r.status_code == 200, r.text
    sent = lab.upstream.requests[-1]
    assert sent.url.path == "/v1/images/edits"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert src in sent.content and sent.headers["authorization"] == "Bearer sk-up"
    signed = base64.b64decode(r.json()["data"][0]["b64_json"])
    state, manifest, _ = read(signed, "image/webp", lab.pki.ca.read_bytes())
    assert state == "Trusted" and created_action(manifest)["softwareAgent"]["name"] == "img-webp"


@pytest.mark.parametrize("fmt", [pytest.param(f, id=f) for f in FORMATS])
async def test_upstream_manifest_is_kept_as_ingredient(lab: LabApp, fmt: str) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations",
                            json={"model": f"presigned-{fmt}", "prompt": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["guardrail"]["c2pa"]["upstream_manifests_kept"] == 1
    signed = base64.b64decode(r.json()["data"][0]["b64_json"])
    state, manifest, store = read(signed, FORMATS[fmt][1], lab.pki.ca.read_bytes())
    assert state == "Trusted"
    assert len(store["manifests"]) == 2
    [ingredient] = manifest["ingredients"]
    assert ingredient["relationship"] == "componentOf"
    upstream = store["manifests"][ingredient["active_manifest"]]
    assert created_action(upstream)["softwareAgent"]["name"] == "upstream-native"


@pytest.mark.parametrize(("model", "code", "category"), [
    pytest.param("bad-base64", "upstream_bad_image", "upstream_bad_image", id="not-base64"),
    pytest.param("bad-bytes", "upstream_bad_image", "upstream_bad_image", id="not-an-image"),
    pytest.param("bad-truncated", "upstream_bad_image", "upstream_bad_image", id="truncated"),
    pytest.param("bad-url", "upstream_image_fetch_failed", "upstream_image_fetch_failed",
                 id="url-404"),
])
async def test_malformed_upstream_image_is_a_clear_error_and_an_incident(
    lab: LabApp, model: str, code: str, category: str
) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={"model": model, "prompt": "x"})
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == "upstream_error"
    assert "incident inc_" in err["message"]
    incident_id = err["message"].rsplit("incident ", 1)[1].rstrip(")")
    rec = lab.state.store.get(incident_id)
    assert rec is not None
    assert rec["kind"] == "labelling_failure" and rec["category"] == category
    assert rec["stage"] == "image" and rec["route"] == "/v1/images/generations"
    assert rec["requested_model"] == model and rec["action"] == "block"
    assert rec["evidence"]["index"] == 0


async def test_tampered_and_unsigned_images_through_verify(lab: LabApp) -> None:
    src = make_image("jpeg")
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={"model": "img-jpeg", "prompt": "x"})
        signed = base64.b64decode(r.json()["data"][0]["b64_json"])
        bad = tamper(signed, make_image("jpeg"))
        v_bad = (await http.post("/v1/guardrail/verify", content=bad,
                                 headers={"content-type": "image/jpeg"})).json()
        v_none = (await http.post("/v1/guardrail/verify", content=src,
                                  headers={"content-type": "image/jpeg"})).json()
    assert v_bad["state"] == "Invalid" and not v_bad["trusted"]
    assert any("mismatch" in p["code"] for p in v_bad["problems"])
    assert v_none["has_manifest"] is False and v_none["state"] is None
    with pytest.raises(c2pa.C2paError):
        read(src, "image/jpeg", None)  # the Reader itself finds no manifest


async def test_openai_sdk_receives_a_signed_image(lab: LabApp) -> None:
    import httpx
    import openai

    from tests.labelling.conftest import CLIENT_KEY

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lab.app)) as http:
        sdk = openai.AsyncOpenAI(base_url="http://proxy.test/v1", api_key=CLIENT_KEY,
                                 http_client=http, max_retries=0)
        raw = await sdk.images.with_raw_response.generate(
            model="img-png", prompt="a cat", response_format="b64_json")
        result = raw.parse()
        with pytest.raises(openai.APIStatusError) as err:
            await sdk.images.generate(model="bad-bytes", prompt="x")
    assert raw.headers["x-ai-generated"] == "true"
    assert result.data and result.data[0].b64_json
    state, manifest, _ = read(base64.b64decode(result.data[0].b64_json), "image/png",
                              lab.pki.ca.read_bytes())
    assert state == "Trusted" and created_action(manifest)["softwareAgent"]["name"] == "img-png"
    assert err.value.status_code == 502 and err.value.code == "upstream_bad_image"


async def test_no_signer_refuses_rather_than_releasing_unsigned(
    lab: LabApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrail.labelling.service import get_labelling

    monkeypatch.setattr(get_labelling(lab.state), "signer", None)
    async with lab.client() as http:
        r = await http.post("/v1/images/generations", json={"model": "img-png", "prompt": "x"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "c2pa_no_signer"
