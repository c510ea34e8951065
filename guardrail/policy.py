"""Policy: the YAML file that says which scanners run, how, and what happens.

Policies live in ``policies/*.yaml``, are validated by pydantic at start-up (errors name the
file, the field and the problem) and are identified by name plus a version hash of their
normalised content, recorded on every incident.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guardrail.errors import PolicyError
from guardrail.labelling.config import LabellingConfig
from guardrail.pipeline.registry import SCANNERS, scanner_config_union
from guardrail.pipeline.types import Action


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdback_chars: int = Field(
        0, ge=0, le=20000,
        description="A floor: trailing characters always kept unreleased. Scanners hold what "
        "they could still need on top (each says how far the text is safe to release).",
    )
    scan_every_chars: int = Field(
        32, ge=1, le=20000, description="Scan when this many new characters have arrived."
    )
    first_release_chars: int = Field(
        32, ge=1, le=20000,
        description="The first scan runs once this many characters lie beyond the fixed "
        "hold-back (the floor and scanners without a text-based bound), and scans repeat every "
        "this many characters until something is released, so the first token reaches the "
        "client as soon as possible; later scans follow scan_every_chars.",
    )


class Messages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: str = "This response was blocked by the content policy (incident {incident_id})."
    hold: str = (
        "This response is being held for review and was not released (incident {incident_id})."
    )


class IncidentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    excerpt_chars: int = Field(240, ge=0, le=4000, description="Redacted excerpt length; 0 = none.")
    retention_days: int = Field(365, ge=1)
    owner: str = Field("unassigned", description="Default remediation owner.")


class ReviewSettings(BaseModel):
    """Who has to look at what, and how soon (the review queue, guardrail/review/)."""

    model_config = ConfigDict(extra="forbid")

    route: list[Action] = Field(
        default_factory=lambda: [Action.HOLD, Action.BLOCK, Action.FLAG],
        description="Incidents of these actions enter the review queue (status open); others "
        "are recorded as not_required. A hold is always reviewed.")
    sla_minutes: int = Field(
        24 * 60, ge=1, description="An open incident older than this is overdue.")
    four_eyes: list[str] = Field(
        default_factory=list,
        description="Scanner names (e.g. ip) whose holds need two different reviewers to "
        "release: the first release records awaiting_second.")


class HoldSettings(BaseModel):
    """What happens to a held response (stored encrypted until a reviewer decides)."""

    model_config = ConfigDict(extra="forbid")

    expire_after_minutes: int = Field(
        7 * 24 * 60, ge=1, description="A hold nobody decided is decided by the system after "
        "this long.")
    on_expiry: Literal["release", "reject"] = Field(
        "reject", description="The system's decision on an expired hold.")
    max_stream_chars: int = Field(
        200_000, ge=1000, le=10_000_000,
        description="A held stream is read to its end (so the whole response can be released) "
        "up to this many characters per choice; beyond, the held copy is cut and says so.")


class Policy(BaseModel):
    """A guardrail policy. See ``policies/default.yaml`` for a commented example."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    system: str = Field("default", description="AI system inventory id this policy governs.")
    upstream: str | None = Field(None, description="Upstream base URL overriding the default.")
    on_scanner_error: Literal["fail_open", "fail_closed"] = "fail_closed"
    on_store_error: Literal["fail_open", "fail_closed"] = Field(
        "fail_closed", description="The incident store unreachable: fail_closed answers 503 "
        "and releases nothing; fail_open writes the incident records to a durable local outbox "
        "(fsynced before the response leaves) and replays them when the store is back.")
    fail_closed_action: Action = Action.BLOCK
    scanner_timeout_ms: int = Field(2000, gt=0, le=120000)
    stream: StreamSettings = StreamSettings()
    messages: Messages = Messages()
    incidents: IncidentSettings = IncidentSettings()
    review: ReviewSettings = ReviewSettings()
    hold: HoldSettings = HoldSettings()
    labelling: LabellingConfig = LabellingConfig()
    scanners: list[scanner_config_union()] = Field(default_factory=list)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [s.instance_name for s in self.scanners]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"scanner names must be unique; repeated: {sorted(dupes)}")
        if self.fail_closed_action in (Action.ALLOW, Action.REDACT):
            raise ValueError("fail_closed_action must be flag, hold or block")
        return self

    @property
    def version(self) -> str:
        cached = self.__dict__.get("_version")
        if cached is None:
            cached = self.__dict__["_version"] = policy_version(self)
        return cached


def policy_version(policy: Policy) -> str:
    """sha256 over the canonical JSON of the validated policy (defaults filled in), so that
    reformatting or reordering the YAML keeps the version, and any semantic change alters it."""
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def load_policy_file(path: str | Path) -> Policy:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(str(path), [("(file)", str(exc))]) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(str(path), [("(yaml)", str(exc).replace("\n", " "))]) from exc
    if not isinstance(raw, dict):
        raise PolicyError(str(path), [("(root)", "expected a mapping")])
    raw.setdefault("name", path.stem)
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            # drop the discriminator tag pydantic inserts: scanners[0].denylist.terms
            if len(loc) > 2 and loc[0] == "scanners" and loc[2] in SCANNERS:
                loc = loc[:2] + loc[3:]
            problems.append((_loc(loc), err["msg"]))
        raise PolicyError(str(path), problems) from None


class PolicySet:
    """All loaded policies, the default, and which client key maps to which policy."""

    def __init__(self, policies: dict[str, Policy], default: str, key_map: dict[str, str]):
        if default not in policies:
            raise PolicyError("(settings)", [("default_policy", f"no policy named {default!r}")])
        for key_id, name in key_map.items():
            if name not in policies:
                raise PolicyError(
                    "(settings)", [("key_policies", f"key {key_id!r} maps to unknown {name!r}")]
                )
        self.policies = policies
        self.default = default
        self.key_map = key_map

    def for_key(self, key_id: str | None) -> Policy:
        return self.policies[self.key_map.get(key_id or "", self.default)]

    @classmethod
    def load(
        cls, directory: Path | None, extra_files: list[Path], default: str, key_map: dict[str, str]
    ) -> PolicySet:
        policies: dict[str, Policy] = {}
        files = sorted(directory.glob("*.yaml")) if directory and directory.is_dir() else []
        for f in [*files, *extra_files]:
            p = load_policy_file(f)
            policies[p.name] = p
        if extra_files and default not in policies:
            default = load_policy_file(extra_files[-1]).name
        return cls(policies, default, key_map)


def policy_json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "guardrail policy"
    return schema
