"""Process settings from ``GUARDRAIL_*`` environment variables (pydantic-settings).

Library code receives a :class:`Settings` instance; nothing reads a module-level global.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split(value: object) -> object:
    if isinstance(value, str):
        return _csv_items(value)
    return value


def _csv_items(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def key_id(key: str) -> str:
    """A stable, non-reversible id for an API key (what incidents and logs record)."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GUARDRAIL_", env_file=None, extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    upstream_url: str | None = Field(
        None, description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1. "
        "Unset: the built-in scripted upstream is used."
    )
    upstream_api_key: SecretStr | None = Field(None, description="Key the proxy sends upstream.")
    upstream_connect_timeout_s: float = 5.0
    upstream_read_timeout_s: float = 120.0
    upstream_max_connections: int = 200
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_key: SecretStr | None = None
    database_url: str = "sqlite:///./guardrail.db"
    policy_dir: Path = Path("policies")
    policy_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    default_policy: str = "default"
    key_policies: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="client-key-id=policy pairs, comma separated (ids from `guardrail keys id`).",
    )
    corpus_index_dir: Path | None = Field(
        None, description="Where the IP corpus LSH index lives (default: beside the SQLite "
        "database, or ./.guardrail/index)."
    )
    max_body_bytes: int = 1_000_000
    log_level: str = "info"

    @field_validator("api_keys", "policy_files", mode="before")
    @classmethod
    def _csv(cls, v: object) -> object:
        return _split(v)

    @field_validator("key_policies", mode="before")
    @classmethod
    def _pairs(cls, v: object) -> object:
        if isinstance(v, str):
            out = {}
            for pair in _csv_items(v):
                k, sep, name = pair.partition("=")
                if not sep:
                    raise ValueError(f"expected key_id=policy, got {pair!r}")
                out[k.strip()] = name.strip()
            return out
        return v

    @property
    def dev_mode(self) -> bool:
        """No client keys configured: any key is accepted, loopback only."""
        return not self.api_keys

    def client_key_ids(self) -> dict[str, str]:
        return {k.get_secret_value(): key_id(k.get_secret_value()) for k in self.api_keys}
