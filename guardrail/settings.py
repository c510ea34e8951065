"""Process settings from ``GUARDRAIL_*`` environment variables (pydantic-settings).

Library code receives a :class:`Settings` instance; nothing reads a module-level global.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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


class ClientKey(BaseModel):
    """One client key and what it belongs to: the tenant recorded on its incidents and,
    optionally, the policy that governs it (else ``key_policies`` / the default policy)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: SecretStr
    tenant: str | None = Field(None, min_length=1, max_length=128)
    policy: str | None = Field(None, min_length=1)
    rate_per_min: int | None = Field(None, ge=0, description="Requests per minute for this "
                                     "key (0: unlimited; unset: GUARDRAIL_KEY_RATE_PER_MIN).")
    max_concurrency: int | None = Field(None, ge=0, description="Requests in flight for this "
                                        "key (unset: GUARDRAIL_KEY_MAX_CONCURRENCY).")
    webhook_url: str | None = Field(None, pattern=r"^https?://", max_length=2048,
                                    description="Decisions on this key's held responses are "
                                    "posted here, signed with webhook_secret.")
    webhook_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _webhook_pair(self) -> ClientKey:
        if bool(self.webhook_url) != bool(self.webhook_secret):
            raise ValueError("webhook_url and webhook_secret go together")
        return self

    @field_validator("key")
    @classmethod
    def _non_empty(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("an API key cannot be empty")
        return v

    @property
    def id(self) -> str:
        return key_id(self.key.get_secret_value())


def _key_entry(item: object) -> object:
    """``KEY``, ``KEY:TENANT`` or ``KEY:TENANT:POLICY`` (a key containing ``:`` needs the JSON
    form); a ``SecretStr`` or a mapping passes through to :class:`ClientKey`."""
    if isinstance(item, SecretStr):
        return {"key": item}
    if isinstance(item, str):
        key, _, rest = item.strip().partition(":")
        tenant, _, policy = rest.partition(":")
        return {"key": key.strip(), "tenant": tenant.strip() or None,
                "policy": policy.strip() or None}
    return item


def _key_entries(value: object) -> object:
    """``GUARDRAIL_API_KEYS``: comma-separated entries (see :func:`_key_entry`), or JSON: a
    list of entries / objects, or an object mapping each key to its tenant (a string) or to
    ``{"tenant": ..., "policy": ...}``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"GUARDRAIL_API_KEYS is not valid JSON: {exc}") from None
        else:
            return [_key_entry(v) for v in _csv_items(text)]
    if isinstance(value, dict):
        out: list[object] = []
        for key, spec in value.items():
            if spec is None or isinstance(spec, str):
                out.append({"key": key, "tenant": spec})
            elif isinstance(spec, dict):
                out.append({"key": key, **spec})
            else:
                raise ValueError(f"a key maps to a tenant name or an object, not {spec!r}")
        return out
    if isinstance(value, list | tuple):
        return [_key_entry(v) for v in value]
    return value


def _json_setting(value: object, env: str) -> object:
    """A setting given as a JSON string (empty: ``{}``); other values pass through."""
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{env} is not valid JSON: {exc}") from None
    return value


# governance: lifecycle, redress, retention. Reporting clocks of a serious incident, in days
# from the moment it was flagged serious (guardrail.governance.lifecycle).
DEFAULT_INCIDENT_CLOCKS: dict[str, dict[str, float]] = {
    "eu_general": {"eu_report": 15},  # EU AI Act Art. 73(2)
    "eu_widespread": {"eu_report": 2},  # Art. 73(3): widespread / critical infrastructure
    "eu_death": {"eu_report": 10},  # Art. 73(4)
    "appi": {"appi_preliminary": 3, "appi_final": 30},  # APPI rules Art. 8: promptly; 30 days
    "appi_improper": {"appi_preliminary": 3, "appi_final": 60},  # by an improper purpose
}


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
    api_keys: Annotated[list[ClientKey], NoDecode] = Field(
        default_factory=list,
        description="Client keys: `KEY[:TENANT[:POLICY]]`, comma separated, or JSON mapping "
        "each key to its tenant or to {tenant, policy}. Unset: dev mode.",
    )
    default_tenant: str = Field(
        "default", min_length=1, max_length=128,
        description="Tenant recorded for a key configured without one (and in dev mode).",
    )
    admin_key: SecretStr | None = Field(
        None, description="Bootstrap admin key: the admin API with the admin role (it is no "
        "person, so it records no review decision). People sign in with their own accounts."
    )
    session_ttl_s: float = Field(8 * 3600, gt=0, description="A sign-in lasts at most this.")
    session_idle_s: float = Field(3600, gt=0, description="A sign-in ends after this idle time.")
    signin_max_failures: int = Field(5, ge=1, description="Failed sign-ins allowed per name "
                                     "and client address within signin_window_s (then 429).")
    signin_window_s: float = Field(300, gt=0)
    public_scheme: Literal["auto", "http", "https"] = Field(
        "auto", description="`https` behind a TLS-terminating proxy: session cookies are "
        "`Secure`. `auto`: `Secure` when the request arrived over https (uvicorn honours "
        "X-Forwarded-Proto from --forwarded-allow-ips)."
    )
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
    # corpus sync (guardrail/corpus/sync.py): each node checks the store's corpus generation
    # this often and syncs its local index when it moved; a work registered through any
    # node is found by every node within corpus_sync_s plus the time to index it
    corpus_sync_s: float = Field(
        2.0, gt=0, description="How often a node checks the store for corpus changes "
        "(registrations and deletions through other nodes).")
    max_body_bytes: int = 1_000_000
    image_fetch_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts, besides the upstream's own, that image URLs in upstream responses "
        "may be fetched from: `host` (any port), `host:port` or `*.domain`, comma separated.",
    )
    image_fetch_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Image hosts (same forms) allowed to resolve to private, loopback or "
        "reserved addresses, e.g. a self-hosted upstream; link-local never is.",
    )
    image_fetch_timeout_s: float = Field(10.0, gt=0, description="Whole image fetch, "
                                         "resolution and redirects included.")
    image_fetch_max_redirects: int = Field(3, ge=0, description="Redirect hops followed, "
                                           "each checked like the first URL (0: none).")
    api_docs: bool = Field(
        False, description="Serve /docs, /redoc and /openapi.json (development only; the "
        "pages load their scripts from a CDN, so they are blank offline)."
    )
    log_level: str = "info"
    log_format: Literal["json", "text"] = Field(
        "json", description="Operations log: one JSON object per line (`json`) or "
        "`key=value` text (`text`, for a terminal). See guardrail/logs.py for the events."
    )
    hold_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Fernet keys (urlsafe base64, 32 bytes) that encrypt held responses, comma "
        "separated: the first encrypts, every one decrypts (rotation: put the new key first, "
        "run `guardrail holds rotate`, then drop the old one). Unset: a key file is created "
        "beside the SQLite database (hold_key_file), and start-up says so.")
    hold_key_file: Path | None = Field(
        None, description="Where the generated hold key lives when hold_keys is unset "
        "(default: .guardrail/hold.key beside the SQLite database).")
    webhooks: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=dict,
        description="JSON: client key id -> {url, secret}, for keys kept in the store "
        "(configured keys can carry webhook_url and webhook_secret themselves).")
    webhook_timeout_s: float = Field(10.0, gt=0, description="One webhook attempt.")
    webhook_max_attempts: int = Field(6, ge=1, le=20)
    webhook_backoff_s: float = Field(2.0, gt=0, description="Wait before the first retry; "
                                     "doubles after each.")
    # scale-out and limits
    redis_url: str | None = Field(
        None, description="Redis for state shared by every worker and node (per-key limits, "
        "sign-in limits). Unset: in this process.")
    redis_namespace: str = Field("guardrail", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                 description="Prefix of every Redis key (one per deployment).")
    key_rate_per_min: int = Field(0, ge=0, description="Requests per minute per client key "
                                  "(0: unlimited); a key's own rate_per_min overrides it.")
    key_max_concurrency: int = Field(0, ge=0, description="Requests in flight per client key "
                                     "(0: unlimited); a key's own max_concurrency overrides.")
    max_json_depth: int = Field(64, ge=4, le=1000, description="Deeper request JSON is 400.")
    auto_migrate: bool = Field(
        True, description="Bring the database schema to the latest migration at start-up. "
        "Off for many workers or nodes: run `guardrail db upgrade` once before starting them "
        "(start-up then refuses a schema that is not current).")
    outbox_dir: Path | None = Field(
        None, description="The durable local outbox for policies with on_store_error: "
        "fail_open (default: .guardrail/outbox beside the SQLite database, else ./.guardrail).")
    outbox_replay_s: float = Field(5.0, gt=0, description="How often the outbox is replayed.")
    labelling_flush_s: float = Field(5.0, gt=0, description="How often the counts of "
                                     "labelled outputs are written to the store.")
    malloc_trim_s: float = Field(
        30.0, ge=0, description="Give freed heap memory back to the OS this often (glibc "
        "malloc_trim; 0: never). See guardrail/memory.py.")
    hold_sweep_s: float = Field(30.0, gt=0, description="How often expired holds are decided.")
    # governance (guardrail/governance/): the AI system inventory and risk assessments
    inventory_dir: Path | None = Field(
        None, description="AI system inventory: one YAML file per system (default: "
        "<policy_dir>/systems). None there: built-in placeholder systems, with a warning.")
    assessments_dir: Path | None = Field(
        None, description="Risk assessments: one YAML file per assessment (default: "
        "<policy_dir>/assessments).")
    scanner_workers: int = Field(
        2, ge=1, le=64, description="Threads of each thread-backed scanner's own pool (pii, "
        "ip), unless its policy config sets `workers`."
    )
    # governance: lifecycle, redress, retention
    incident_clocks: Annotated[dict[str, dict[str, float]], NoDecode] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_INCIDENT_CLOCKS.items()},
        description="JSON: serious-incident kind -> {clock: days from the serious flag}. "
        "Defaults: EU AI Act Art. 73 (15 days; 2 for a widespread infringement or critical "
        "infrastructure; 10 for a death) and Japan's APPI breach reports (preliminary in 3 "
        "days, final in 30; 60 for breaches by an improper purpose).")
    redress_max_per_window: int = Field(5, ge=1, description="Redress intakes accepted per "
                                        "client address within redress_window_s (then 429).")
    redress_window_s: float = Field(3600, gt=0)
    redress_lookups_per_window: int = Field(
        30, ge=1, description="Redress status lookups per client address within "
        "redress_window_s (then 429): acknowledgement ids cannot be guessed by trying.")
    retention_floor_days: int = Field(
        183, ge=0, description="`guardrail incidents purge` never removes anything younger "
        "than this, whatever a policy's incidents.retention_days says (EU AI Act Arts. 19 "
        "and 26(6): logs are kept at least six months).")
    bundle_signing_key: SecretStr | None = Field(
        None, description="Ed25519 private key (PEM) that signs evidence bundles "
        "(`guardrail incidents export --bundle`). Unset: a key file is generated beside the "
        "SQLite database (bundle_key_file).")
    bundle_key_file: Path | None = Field(
        None, description="Where the generated bundle signing key lives when "
        "bundle_signing_key is unset (default: .guardrail/bundle-signing.pem beside the "
        "SQLite database).")

    @field_validator("incident_clocks", mode="before")
    @classmethod
    def _clocks(cls, v: object) -> object:
        return _json_setting(v, "GUARDRAIL_INCIDENT_CLOCKS")

    @field_validator("policy_files", "image_fetch_hosts", "image_fetch_private_hosts",
                     mode="before")
    @classmethod
    def _csv(cls, v: object) -> object:
        return _split(v)

    @field_validator("hold_keys", mode="before")
    @classmethod
    def _hold_keys(cls, v: object) -> object:
        return _split(v)

    @field_validator("webhooks", mode="before")
    @classmethod
    def _webhooks(cls, v: object) -> object:
        return _json_setting(v, "GUARDRAIL_WEBHOOKS")

    def webhook_for(self, key_id_: str | None) -> tuple[str, str] | None:
        """(url, secret) for decision notices on this key's held responses, if any."""
        for k in self.api_keys:
            if k.id == key_id_ and k.webhook_url and k.webhook_secret:
                return k.webhook_url, k.webhook_secret.get_secret_value()
        hook = self.webhooks.get(key_id_ or "")
        if hook and hook.get("url") and hook.get("secret"):
            return hook["url"], hook["secret"]
        return None

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, v: object) -> object:
        return _key_entries(v)

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

    @model_validator(mode="after")
    def _keys_consistent(self) -> Settings:
        seen: set[str] = set()
        for k in self.api_keys:
            if k.id in seen:
                raise ValueError(f"api_keys: key {k.id} is configured twice")
            seen.add(k.id)
            mapped = self.key_policies.get(k.id)
            if k.policy and mapped and mapped != k.policy:
                raise ValueError(f"key {k.id}: api_keys says policy {k.policy!r}, "
                                 f"key_policies says {mapped!r}")
        return self

    @property
    def dev_mode(self) -> bool:
        """No client keys configured: any key is accepted, loopback only."""
        return not self.api_keys

    def client_key_ids(self) -> dict[str, str]:
        return {k.key.get_secret_value(): k.id for k in self.api_keys}

    def key_policy_map(self) -> dict[str, str]:
        """key id -> policy name, from ``key_policies`` and the policies named in ``api_keys``."""
        return {**self.key_policies, **{k.id: k.policy for k in self.api_keys if k.policy}}

    def limits_of(self, key: ClientKey | None) -> tuple[int, int]:
        """(requests per minute, requests in flight) for a client key (0: unlimited)."""
        rate = key.rate_per_min if key is not None and key.rate_per_min is not None else None
        conc = (key.max_concurrency if key is not None and key.max_concurrency is not None
                else None)
        return (self.key_rate_per_min if rate is None else rate,
                self.key_max_concurrency if conc is None else conc)

    def tenant_of(self, key: ClientKey | None) -> str:
        return (key.tenant if key is not None and key.tenant else None) or self.default_tenant
