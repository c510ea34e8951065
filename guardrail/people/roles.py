"""Roles, what each may do, and the authenticated principal every route sees.

========== ==================================================================
admin       everything: people, keys, corpora, readiness details, decisions
reviewer    reads incidents and held content, records review decisions
auditor     reads incidents, review history, the chain's verification (read-only)
compliance  governance records and reports; reads incidents
========== ==================================================================

``GUARDRAIL_ADMIN_KEY`` acts with the admin role but is no person: it can bootstrap and run
the admin API, and reads it makes are recorded against the key's id. Decisions always name a
person, so the key cannot record one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from guardrail.errors import BadRequestError

ROLES = ("admin", "reviewer", "auditor", "compliance")
Role = Literal["admin", "reviewer", "auditor", "compliance"]


class Perm(StrEnum):
    ADMIN = "admin"  # people, keys, corpora, readiness details
    READ_INCIDENTS = "incidents:read"  # incidents, evidence, review history, verify
    REVIEW = "incidents:review"  # record a decision
    GOVERNANCE = "governance"  # governance records and reports


GRANTS: dict[str, frozenset[Perm]] = {
    "admin": frozenset(Perm),
    "reviewer": frozenset({Perm.READ_INCIDENTS, Perm.REVIEW}),
    "auditor": frozenset({Perm.READ_INCIDENTS}),
    "compliance": frozenset({Perm.READ_INCIDENTS, Perm.GOVERNANCE}),
}


def can(role: str, perm: Perm) -> bool:
    return perm in GRANTS.get(role, frozenset())


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (by session or token) or the bootstrap admin key."""

    name: str  # the person's name; for the admin key, "admin-key"
    role: str
    via: Literal["session", "token", "admin_key"]
    person_id: int | None = None  # None: the admin key
    key_id: str | None = None  # the admin key's id
    locale: str | None = None  # the person's saved page language ("ja" | "en"); None: browser's
    timezone: str | None = None  # the person's saved IANA time zone; None: UTC

    @property
    def is_person(self) -> bool:
        return self.person_id is not None

    @property
    def actor(self) -> str:
        """What a record names: the person, or the admin key by its id."""
        return self.name if self.is_person else f"admin-key {self.key_id or ''}".strip()

    def can(self, perm: Perm) -> bool:
        return can(self.role, perm)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequestError(f"Unknown role {role!r}; one of {', '.join(ROLES)}.",
                              param="role", code="invalid_value")
    return role


def clean_name(name: str) -> str:
    """A person's name as shown and recorded: NFC, trimmed, 1-128 characters, no control
    characters. Any script: 山田花子 and Zoë are names like Sato."""
    out = unicodedata.normalize("NFC", name).strip()
    if not out or len(out) > 128:
        raise BadRequestError("A name has 1 to 128 characters.", param="name",
                              code="invalid_value")
    if any(unicodedata.category(c).startswith("C") for c in out):
        raise BadRequestError("A name cannot contain control characters.", param="name",
                              code="invalid_value")
    return out


def name_key(name: str) -> str:
    """What sign-in and uniqueness compare: "Sato", "sato" and "ＳＡＴＯ" are one account."""
    return unicodedata.normalize("NFKC", clean_name(name)).casefold()[:128]
