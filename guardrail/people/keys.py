"""Client keys kept in the store (``guardrail keys add``), beside ``GUARDRAIL_API_KEYS``.

A key belongs to a tenant and, optionally, a policy; only its SHA-256 digest is stored, and
its id is the same ``key_...`` id that configured keys get (:func:`guardrail.settings.key_id`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from guardrail.errors import BadRequestError, NotFoundError, map_store_exception
from guardrail.people.models import ClientKeyRow
from guardrail.people.passwords import digest, new_secret
from guardrail.people.store import PeopleStore, aware
from guardrail.settings import key_id

KEY_PREFIX = "sk-gr-"


@dataclass(frozen=True)
class StoredKey:
    id: str
    tenant: str
    policy: str | None


def _dict(r: ClientKeyRow) -> dict[str, Any]:
    return {"id": r.id, "tenant": r.tenant, "policy": r.policy,
            "created_at": aware(r.created_at).isoformat(),
            "revoked_at": aware(r.revoked_at).isoformat() if r.revoked_at else None}


class ClientKeys:
    def __init__(self, people: PeopleStore) -> None:
        self.people = people

    def add(self, tenant: str, policy: str | None = None) -> tuple[dict[str, Any], str]:
        """A new client key (returned once) for ``tenant``, governed by ``policy`` if given."""
        tenant = tenant.strip()
        if not tenant or len(tenant) > 128:
            raise BadRequestError("A tenant has 1 to 128 characters.", param="tenant",
                                  code="invalid_value")
        key = new_secret(KEY_PREFIX)
        row = ClientKeyRow(id=key_id(key), key_hash=digest(key), tenant=tenant,
                           policy=(policy or "").strip() or None,
                           created_at=self.people.clock())
        with self.people.sessions.begin() as s:
            s.add(row)
            s.flush()
            return _dict(row), key

    def lookup(self, key: str) -> StoredKey | None:
        """The live stored key ``key`` is, if any (one indexed read)."""
        try:
            with self.people.sessions() as s:
                row = s.execute(select(ClientKeyRow).where(
                    ClientKeyRow.key_hash == digest(key),
                    ClientKeyRow.revoked_at.is_(None))).scalar()
        except SQLAlchemyError as exc:
            raise map_store_exception(exc) from exc
        return StoredKey(id=row.id, tenant=row.tenant, policy=row.policy) if row else None

    def any_live(self) -> bool:
        """Whether the store holds a live key (then the proxy is not in dev mode)."""
        try:
            with self.people.sessions() as s:
                return s.execute(select(ClientKeyRow.id).where(
                    ClientKeyRow.revoked_at.is_(None)).limit(1)).first() is not None
        except SQLAlchemyError as exc:
            raise map_store_exception(exc) from exc

    def list(self) -> list[dict[str, Any]]:
        with self.people.sessions() as s:
            return [_dict(r) for r in
                    s.execute(select(ClientKeyRow).order_by(ClientKeyRow.created_at)).scalars()]

    def revoke(self, kid: str) -> dict[str, Any]:
        with self.people.sessions.begin() as s:
            row = s.get(ClientKeyRow, kid)
            if row is None:
                raise NotFoundError(f"No stored client key {kid!r}.")
            if row.revoked_at is None:
                row.revoked_at = self.people.clock()
            return _dict(row)
