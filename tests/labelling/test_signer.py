"""PKI, signer sources (files, env, dev PKI, KMS-style callback), TSA handling, fork safety."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from guardrail.errors import ConfigError
from guardrail.labelling.c2pa_images import (
    ImageSigner,
    TimestampAuthorityError,
    verify_image,
)
from guardrail.labelling.config import ImageSigningConfig
from guardrail.labelling.pki import PkiPaths
from guardrail.labelling.service import setup_labelling
from guardrail.labelling.settings import C2paSettings
from guardrail.labelling.signer import SignerSource, der_to_raw_ecdsa, load_signer_source
from tests.labelling.fakes import make_image

SIGN_KW: dict[str, Any] = {"model": "m", "policy_name": "p", "policy_version": "1",
                           "request_id": "r"}
DEAD_TSA = "http://127.0.0.1:9/tsa"  # discard port: connection refused at once


def test_dev_certificates_carry_the_extensions_c2pa_accepts(pki: PkiPaths) -> None:
    leaf, ca = x509.load_pem_x509_certificates(pki.chain.read_bytes())  # leaf first
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku
    assert leaf.issuer == ca.subject
    assert pki.ca.read_bytes() == ca.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("how", ["files", "env-pem"])
def test_signer_from_configuration(pki: PkiPaths, monkeypatch: pytest.MonkeyPatch,
                                   how: str) -> None:
    if how == "files":
        monkeypatch.setenv("GUARDRAIL_C2PA_CERT", str(pki.chain))
        monkeypatch.setenv("GUARDRAIL_C2PA_KEY", str(pki.key))
    else:
        monkeypatch.setenv("GUARDRAIL_C2PA_CERT_PEM", pki.chain.read_text())
        monkeypatch.setenv("GUARDRAIL_C2PA_KEY_PEM", pki.key.read_text())
    monkeypatch.setenv("GUARDRAIL_C2PA_TRUST_ANCHORS", str(pki.ca))
    source = load_signer_source()
    assert source is not None and not source.development
    assert source.origin == ("files" if how == "files" else "env")
    assert "PRIVATE" not in repr(source)
    signed = ImageSigner(source).sign(make_image("png"), ImageSigningConfig(), **SIGN_KW)
    assert verify_image(signed.data, source.anchors_pem).state == "Trusted"


@pytest.mark.parametrize(("env", "message"), [
    pytest.param({"GUARDRAIL_C2PA_CERT": "{chain}"}, "both", id="cert-without-key"),
    pytest.param({"GUARDRAIL_C2PA_CERT": "/nonexistent.pem", "GUARDRAIL_C2PA_KEY": "{key}"},
                 "cannot read", id="missing-file"),
    pytest.param({"GUARDRAIL_C2PA_CERT": "{key}", "GUARDRAIL_C2PA_KEY": "{key}"},
                 "not PEM", id="key-as-cert"),
    pytest.param({"GUARDRAIL_C2PA_TRUST_ANCHORS": "{key}"}, "no PEM certificate",
                 id="bad-anchors"),
])
def test_bad_configuration_is_a_config_error(pki: PkiPaths, monkeypatch: pytest.MonkeyPatch,
                                             env: dict[str, str], message: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v.format(chain=pki.chain, key=pki.key))
    with pytest.raises(ConfigError, match=message):
        load_signer_source(C2paSettings(dev_pki=False))


def test_no_key_creates_a_loud_development_pki(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    state = type("S", (), {})()
    with caplog.at_level(logging.WARNING, "guardrail.labelling"):
        info = setup_labelling(state, C2paSettings(dev_pki_dir=tmp_path / "pki"))
    assert "DEVELOPMENT CA" in caplog.text
    assert (tmp_path / "pki" / "ca.pem").is_file()
    assert info["signing"] and info["signer"]["development_ca"] is True
    assert info["trust_anchors"] == 1 and info["text_c2pa"] is False
    svc = state.extras["labelling"]
    signed = svc.signer.sign(make_image("webp"), ImageSigningConfig(), **SIGN_KW)
    assert verify_image(signed.data, svc.anchors_pem).state == "Trusted"


def test_no_key_and_no_dev_pki_means_no_signer(tmp_path: Path) -> None:
    state = type("S", (), {"extras": {}})()
    info = setup_labelling(state, C2paSettings(dev_pki=False))
    assert info["signing"] is False and "GUARDRAIL_C2PA_CERT" in info["problem"]


def test_kms_style_callback_signer(pki: PkiPaths) -> None:
    """The private key stays with the 'KMS' (a closure here); c2pa gets signatures only."""
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    calls: list[int] = []

    def kms_sign(data: bytes) -> bytes:
        calls.append(len(data))
        return der_to_raw_ecdsa(key.sign(data, ec.ECDSA(hashes.SHA256())))

    source = load_signer_source(C2paSettings(cert=pki.chain, dev_pki=False), callback=kms_sign)
    assert source is not None and source.origin == "callback" and source.key_pem is None
    signed = ImageSigner(source).sign(make_image("jpeg"), ImageSigningConfig(), **SIGN_KW)
    assert calls and verify_image(signed.data, pki.ca.read_bytes()).state == "Trusted"


@pytest.mark.parametrize(("mode", "outcome"), [
    pytest.param("fail", "error", id="fail"),
    pytest.param("sign_without_timestamp", "signed", id="sign-without-timestamp"),
])
def test_timestamp_authority_failure(pki: PkiPaths, mode: str, outcome: str) -> None:
    source = SignerSource("es256", pki.chain.read_bytes(), key_pem=pki.key.read_bytes())
    cfg = ImageSigningConfig(timestamp_authority=DEAD_TSA, on_tsa_failure=mode)  # type: ignore[arg-type]
    signer = ImageSigner(source)
    if outcome == "error":
        with pytest.raises(TimestampAuthorityError, match="127.0.0.1:9"):
            signer.sign(make_image("png"), cfg, **SIGN_KW)
    else:
        out = signer.sign(make_image("png"), cfg, **SIGN_KW)
        assert not out.timestamped and "without a timestamp" in out.warnings[0]
        assert verify_image(out.data, pki.ca.read_bytes()).state == "Trusted"


def test_thumbnail_setting_embeds_a_small_thumbnail(pki: PkiPaths) -> None:
    source = SignerSource("es256", pki.chain.read_bytes(), key_pem=pki.key.read_bytes())
    out = ImageSigner(source).sign(make_image("jpeg", size=300), ImageSigningConfig(
        thumbnail=64), **SIGN_KW)
    v = verify_image(out.data, pki.ca.read_bytes())
    assert v.state == "Trusted" and "thumbnail" in (v.manifest or {})


def _child_sign(signer: ImageSigner, anchors: bytes, q: Any) -> None:
    try:
        out = signer.sign(make_image("png"), ImageSigningConfig(), **SIGN_KW)
        q.put(verify_image(out.data, anchors).state)
    except Exception as exc:  # noqa: BLE001 - report to the parent
        q.put(f"error: {exc}")


def test_signer_used_before_fork_still_signs_in_the_child(pki: PkiPaths) -> None:
    source = SignerSource("es256", pki.chain.read_bytes(), key_pem=pki.key.read_bytes())
    signer = ImageSigner(source)
    signer.sign(make_image("png"), ImageSigningConfig(), **SIGN_KW)  # native handles in parent
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_sign, args=(signer, pki.ca.read_bytes(), q))
    p.start()
    result = q.get(timeout=60)
    p.join(timeout=30)
    assert result == "Trusted"
