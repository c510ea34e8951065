"""A local development PKI for C2PA signing: one CA and one ES256 signer certificate.

c2pa-rs validates signer certificates strictly. What it accepts (checked with c2pa-python
0.38): a CA with ``basicConstraints CA:TRUE`` and ``keyUsage keyCertSign``; a leaf with
``keyUsage digitalSignature`` and ``extendedKeyUsage emailProtection`` (``documentSigning``
alone is rejected by default); the chain PEM written leaf first. A development CA is not in any
public trust list: readers must be given ``ca.pem`` as a trust anchor to report ``Trusted``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CHAIN_FILE = "signer-chain.pem"
KEY_FILE = "signer.key"


@dataclass(frozen=True)
class PkiPaths:
    """Where ``guardrail pki init`` wrote (or found) the development PKI."""

    directory: Path
    ca: Path
    ca_key: Path
    chain: Path
    key: Path
    created: bool

    def as_dict(self) -> dict[str, str | bool]:
        return {
            "directory": str(self.directory),
            "ca": str(self.ca),
            "chain": str(self.chain),
            "key": str(self.key),
            "created": self.created,
        }


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_dev_pki(
    org: str = "guardrail development CA",
    signer_name: str = "guardrail C2PA signer (development)",
    days: int = 825,
) -> tuple[bytes, bytes, bytes, bytes]:
    """Create a CA and a signer certificate in memory.

    Returns ``(ca_pem, ca_key_pem, chain_pem, signer_key_pem)``; ``chain_pem`` is the leaf
    followed by the CA, which is the order c2pa expects.
    """
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(org, org)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days + 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(signer_name, org))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    chain_pem = leaf_cert.public_bytes(serialization.Encoding.PEM) + ca_pem
    return ca_pem, _key_pem(ca_key), chain_pem, _key_pem(leaf_key)


def _write(path: Path, data: bytes, secret: bool) -> None:
    if not secret:
        path.write_bytes(data)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never world-readable
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def init_dev_pki(directory: str | Path, *, force: bool = False) -> PkiPaths:
    """Write a development PKI under ``directory`` unless one is already there.

    Private keys are written with mode 0600. ``force`` replaces an existing PKI (images signed
    with the old CA then no longer verify as trusted against the new anchor).
    """
    d = Path(directory)
    paths = PkiPaths(d, d / CA_FILE, d / CA_KEY_FILE, d / CHAIN_FILE, d / KEY_FILE, False)
    if not force and all(p.is_file() for p in (paths.ca, paths.chain, paths.key)):
        return paths
    d.mkdir(parents=True, exist_ok=True)
    ca_pem, ca_key, chain, key = make_dev_pki()
    _write(paths.ca, ca_pem, False)
    _write(paths.ca_key, ca_key, True)
    _write(paths.chain, chain, False)
    _write(paths.key, key, True)
    return PkiPaths(d, paths.ca, paths.ca_key, paths.chain, paths.key, True)
