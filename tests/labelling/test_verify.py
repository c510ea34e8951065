"""POST /v1/guardrail/verify and `guardrail verify FILE`."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from guardrail.cli import main
from guardrail.labelling.config import ImageSigningConfig
from tests.labelling.conftest import LabApp, presigner
from tests.labelling.fakes import make_image, tamper


@pytest.fixture(scope="module")
def samples(lab: LabApp) -> dict[str, bytes]:
    from guardrail.labelling.service import get_labelling

    signer = get_labelling(lab.state).signer
    assert signer is not None
    src = make_image("png")
    ours = signer.sign(src, ImageSigningConfig(), model="m-1", policy_name="default",
                       policy_version="v", request_id="req_sample").data
    return {"ours": ours, "tampered": tamper(ours, src), "unsigned": src,
            "foreign": presigner(lab.upstream_pki)(src)}


def _request(kind: str, data: bytes) -> dict:
    if kind == "raw":
        return {"content": data, "headers": {"content-type": "image/png"}}
    if kind == "octet":
        return {"content": data, "headers": {"content-type": "application/octet-stream"}}
    if kind == "multipart":
        return {"files": {"file": ("x.png", data, "image/png")}}
    if kind == "json":
        return {"json": {"image": base64.b64encode(data).decode()}}
    return {"json": {"image": "data:image/png;base64," + base64.b64encode(data).decode()}}


@pytest.mark.parametrize(("sample", "state", "has_manifest"), [
    pytest.param("ours", "Trusted", True, id="signed-by-us"),
    pytest.param("foreign", "Valid", True, id="signed-by-untrusted-ca"),
    pytest.param("tampered", "Invalid", True, id="tampered"),
    pytest.param("unsigned", None, False, id="unsigned"),
])
@pytest.mark.parametrize("kind", ["raw", "octet", "multipart", "json", "data-url"])
async def test_verify_route(lab: LabApp, samples: dict[str, bytes], sample: str,
                            state: str | None, has_manifest: bool, kind: str) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/guardrail/verify", **_request(kind, samples[sample]))
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["state"] == state and v["has_manifest"] is has_manifest
    assert v["trusted"] is (state == "Trusted")
    assert v["trust_anchors"]["count"] == 1
    if sample == "ours":
        assert v["ai_generated"] and v["software_agent"] == "m-1"
        assert v["guardrail"]["request_id"] == "req_sample"
        assert v["actions"] == ["c2pa.created"] and v["problems"] == []
    if sample == "tampered":
        assert v["problems"] and not v["trusted"]


@pytest.mark.parametrize(("kwargs", "code"), [
    pytest.param({"json": {"image": "%%%"}}, "invalid_value", id="bad-base64"),
    pytest.param({"json": {"nothing": 1}}, "missing_required_parameter", id="no-image"),
    pytest.param({"content": b"", "headers": {"content-type": "image/png"}},
                 "missing_required_parameter", id="empty"),
])
async def test_verify_rejects_bad_requests(lab: LabApp, kwargs: dict, code: str) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/guardrail/verify", **kwargs)
    assert r.status_code == 400 and r.json()["error"]["code"] == code


async def test_verify_requires_a_client_key(lab: LabApp, samples: dict[str, bytes]) -> None:
    async with lab.client() as http:
        r = await http.post("/v1/guardrail/verify", content=samples["ours"],
                            headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_verify_not_an_image_reports_no_manifest(lab: LabApp) -> None:
    from guardrail.labelling.c2pa_images import verify_image

    v = verify_image(b"plain text, not an image", lab.pki.ca.read_bytes())
    assert not v.has_manifest and v.state is None and v.error


@pytest.mark.parametrize(("sample", "rc", "expect"), [
    pytest.param("ours", 0, "Trusted", id="trusted"),
    pytest.param("foreign", 1, "Valid", id="untrusted"),
    pytest.param("tampered", 1, "Invalid", id="tampered"),
    pytest.param("unsigned", 1, "no C2PA manifest", id="unsigned"),
])
def test_cli_verify(lab: LabApp, samples: dict[str, bytes], tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    sample: str, rc: int, expect: str) -> None:
    monkeypatch.chdir(tmp_path)  # no .guardrail/pki here
    f = tmp_path / "img.png"
    f.write_bytes(samples[sample])
    assert main(["verify", str(f), "--anchors", str(lab.pki.ca)]) == rc
    assert expect in capsys.readouterr().out


def test_cli_pki_init_then_verify_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from guardrail.labelling.c2pa_images import ImageSigner
    from guardrail.labelling.signer import SignerSource

    d = tmp_path / "pki"
    assert main(["pki", "init", "--dir", str(d)]) == 0
    assert "DEVELOPMENT CA" in capsys.readouterr().out
    assert (d / "signer.key").stat().st_mode & 0o777 == 0o600
    first = (d / "ca.pem").read_bytes()
    assert main(["pki", "init", "--dir", str(d)]) == 0  # idempotent
    assert (d / "ca.pem").read_bytes() == first and "already present" in capsys.readouterr().out
    signer = ImageSigner(SignerSource("es256", (d / "signer-chain.pem").read_bytes(),
                                      key_pem=(d / "signer.key").read_bytes()))
    f = tmp_path / "a.jpg"
    f.write_bytes(signer.sign(make_image("jpeg"), ImageSigningConfig(), model="m",
                              policy_name="p", policy_version="1", request_id="r").data)
    monkeypatch.delenv("GUARDRAIL_C2PA_TRUST_ANCHORS", raising=False)
    assert main(["verify", str(f), "--json", "--anchors", str(d / "ca.pem")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["state"] == "Trusted" and out["digital_source_type"].endswith(
        "trainedAlgorithmicMedia")
