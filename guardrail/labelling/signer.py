"""Signing credentials and the per-worker c2pa Signer.

A c2pa ``Signer`` (a native handle) made before ``fork`` is closed in the child, so nothing
here creates one at import or at start-up: :class:`SignerSource` holds only the PEM material
(or a callback) and makes a ``Signer`` lazily, in the process and thread that signs.

KMS / HSM: pass ``callback=`` (``bytes -> signature bytes``) with the public chain; the private
key never enters this process. c2pa-python's ``Signer.from_callback`` calls it with the COSE
``Sig_structure`` to be signed; for ES256 return the raw 64-byte ``r || s`` signature (see
:func:`der_to_raw_ecdsa` for KMS APIs that return DER).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.errors import ConfigError
from guardrail.labelling.pki import init_dev_pki
from guardrail.labelling.settings import C2paSettings

if TYPE_CHECKING:
    import c2pa

log = logging.getLogger("guardrail.labelling")

SignCallback = Callable[[bytes], bytes]


@dataclass(frozen=True)
class SignerSource:
    """Where signatures come from: PEM chain + key, or chain + a signing callback."""

    alg: str
    chain_pem: bytes
    key_pem: bytes | None = field(default=None, repr=False)
    callback: SignCallback | None = field(default=None, repr=False)
    origin: str = "files"
    development: bool = False
    anchors_pem: bytes = b""

    def __post_init__(self) -> None:
        if (self.key_pem is None) == (self.callback is None):
            raise ConfigError("a C2PA signer needs exactly one of a private key or a callback")
        if b"BEGIN CERTIFICATE" not in self.chain_pem:
            raise ConfigError("C2PA certificate chain is not PEM (no BEGIN CERTIFICATE)")

    def make_signer(self, tsa_url: str | None) -> c2pa.Signer:
        """A fresh native Signer (call in the worker process that will sign with it)."""
        import c2pa

        alg = getattr(c2pa.C2paSigningAlg, self.alg.upper())
        if self.callback is not None:
            return c2pa.Signer.from_callback(
                self.callback, alg, self.chain_pem.decode(), tsa_url
            )
        assert self.key_pem is not None
        info = c2pa.C2paSignerInfo(alg, self.chain_pem, self.key_pem, tsa_url)
        return c2pa.Signer.from_info(info)

    def describe(self) -> dict[str, Any]:
        """What /readyz shows: never key material."""
        from cryptography import x509

        out: dict[str, Any] = {"alg": self.alg, "origin": self.origin,
                               "development_ca": self.development,
                               "callback": self.callback is not None}
        try:
            leaf = x509.load_pem_x509_certificates(self.chain_pem)[0]
            out.update(subject=leaf.subject.rfc4514_string(),
                       issuer=leaf.issuer.rfc4514_string(),
                       not_after=leaf.not_valid_after_utc.isoformat())
        except ValueError as exc:
            out["certificate_error"] = str(exc)
        return out


def der_to_raw_ecdsa(der: bytes, alg: str = "es256") -> bytes:
    """Convert a DER ECDSA signature (what most KMS APIs return) to COSE's raw r||s."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    size = {"es256": 32, "es384": 48, "es512": 66}[alg.lower()]
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_anchors(*paths: str | Path | None) -> bytes:
    """Concatenate the PEM trust anchors found in the given files (missing paths skipped
    silently only when None; a named file that cannot be read is a configuration error)."""
    out = b""
    for p in paths:
        if p is None:
            continue
        data = _read(Path(p), "trust anchors")
        if b"BEGIN CERTIFICATE" not in data:
            raise ConfigError(f"trust anchors file {p} holds no PEM certificate")
        out += data if data.endswith(b"\n") else data + b"\n"
    return out


def load_signer_source(
    settings: C2paSettings | None = None,
    *,
    callback: SignCallback | None = None,
) -> SignerSource | None:
    """Build the signer source from ``GUARDRAIL_C2PA_*``.

    Order: a callback (with ``GUARDRAIL_C2PA_CERT``) > PEM from env > PEM files > the
    development PKI under ``GUARDRAIL_C2PA_DEV_PKI_DIR`` (created if missing, logged loudly).
    Returns None when no key is configured and the development PKI is disabled.
    """
    s = settings or C2paSettings()
    anchors = read_anchors(s.trust_anchors)
    chain: bytes | None = None
    if s.cert_pem:
        chain = s.cert_pem.encode()
    elif s.cert:
        chain = _read(s.cert, "C2PA certificate chain")
    if callback is not None:
        if chain is None:
            raise ConfigError("a callback signer needs GUARDRAIL_C2PA_CERT (the public chain)")
        return SignerSource(s.alg, chain, callback=callback, origin="callback",
                            anchors_pem=anchors)
    if s.has_key:
        assert chain is not None
        key = (s.key_pem.get_secret_value().encode() if s.key_pem
               else _read(s.key, "C2PA private key"))  # type: ignore[arg-type]
        origin = "env" if s.cert_pem or s.key_pem else "files"
        return SignerSource(s.alg, chain, key_pem=key, origin=origin, anchors_pem=anchors)
    if s.cert or s.key or s.cert_pem or s.key_pem:
        raise ConfigError("set both GUARDRAIL_C2PA_CERT and GUARDRAIL_C2PA_KEY (or *_PEM)")
    if not s.dev_pki:
        return None
    paths = init_dev_pki(s.dev_pki_dir)
    log.warning(
        "C2PA: no signing key configured (GUARDRAIL_C2PA_CERT/GUARDRAIL_C2PA_KEY); %s the "
        "DEVELOPMENT CA in %s. Images signed with it are trusted only by verifiers given %s "
        "as a trust anchor. Do not use it in production.",
        "created" if paths.created else "using", paths.directory, paths.ca,
    )
    if s.alg != "es256":
        raise ConfigError("the development PKI issues ES256 keys: unset GUARDRAIL_C2PA_ALG")
    return SignerSource(
        "es256", _read(paths.chain, "dev chain"), key_pem=_read(paths.key, "dev key"),
        origin=f"dev-pki:{paths.directory}", development=True,
        anchors_pem=anchors + _read(paths.ca, "dev CA"),
    )
