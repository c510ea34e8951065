"""Signer and trust configuration from the environment (``GUARDRAIL_C2PA_*``).

Kept apart from :mod:`guardrail.settings` so labelling owns its keys::

    GUARDRAIL_C2PA_CERT           path of the signer chain PEM (leaf first)
    GUARDRAIL_C2PA_KEY            path of the signer private key PEM
    GUARDRAIL_C2PA_CERT_PEM       the chain PEM itself (instead of a path; e.g. from a secret)
    GUARDRAIL_C2PA_KEY_PEM        the key PEM itself
    GUARDRAIL_C2PA_TRUST_ANCHORS  PEM file of trust anchors used when verifying
    GUARDRAIL_C2PA_ALG            es256 (default) | es384 | es512 | ps256 | ps384 | ps512 | ed25519
    GUARDRAIL_C2PA_DEV_PKI_DIR    where a development PKI is created when no key is set
                                  (default .guardrail/pki)
    GUARDRAIL_C2PA_DEV_PKI        1 (default): create/use the development PKI when no key is set
    GUARDRAIL_C2PA_IMAGE_CACHE_ITEMS / _BYTES / _TTL_S   signed images kept for URL responses
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class C2paSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUARDRAIL_C2PA_", env_file=None, extra="ignore")

    cert: Path | None = Field(None, description="Signer certificate chain PEM file, leaf first.")
    key: Path | None = Field(None, description="Signer private key PEM file.")
    cert_pem: str | None = None
    key_pem: SecretStr | None = None
    trust_anchors: Path | None = None
    alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    dev_pki: bool = True
    dev_pki_dir: Path = Path(".guardrail/pki")
    image_cache_items: int = Field(256, ge=0)
    image_cache_bytes: int = Field(256_000_000, ge=0)
    image_cache_ttl_s: float = Field(3600.0, gt=0)

    @property
    def has_key(self) -> bool:
        return bool((self.cert or self.cert_pem) and (self.key or self.key_pem))
