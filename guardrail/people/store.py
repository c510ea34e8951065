"""People and their API tokens: add, list, disable, reset, authenticate.

Sync methods (argon2 and SQL run in worker threads; routes wrap them with ``anyio``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from guardrail.db import session_factory
from guardrail.errors import (
    BadRequestError,
    NotFoundError,
    StoreConflictError,
    map_store_exception,
)
from guardrail.people.models import PersonRow, PersonTokenRow, SessionRow
from guardrail.people.passwords import (
    digest,
    hash_password,
    needs_rehash,
    new_secret,
    verify_password,
)
from guardrail.people.roles import Principal, check_role, clean_name, name_key

TOKEN_PREFIX = "gr_pt_"
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(t: datetime) -> datetime:
    """SQLite hands datetimes back naive; every time we store is UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def person_dict(p: PersonRow, tokens: int = 0) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "role": p.role, "disabled": p.disabled,
            "password": p.password_hash is not None, "tokens": tokens,
            "created_at": aware(p.created_at).isoformat()}


def principal(p: PersonRow, via: Literal["session", "token"]) -> Principal:
    return Principal(name=p.name, role=p.role, via=via, person_id=p.id, locale=p.locale,
                     timezone=p.timezone)


class PeopleStore:
    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self.clock = clock

    def _get(self, s: Session, name: str) -> PersonRow:
        row = s.execute(select(PersonRow).where(PersonRow.name_key == name_key(name))).scalar()
        if row is None:
            raise NotFoundError(f"No person named {clean_name(name)!r}.")
        return row

    def _revoke_all(self, s: Session, person_id: int, *, tokens: bool) -> None:
        now = self.clock()
        s.execute(update(SessionRow).where(SessionRow.person_id == person_id,
                                           SessionRow.revoked_at.is_(None))
                  .values(revoked_at=now))
        if tokens:
            s.execute(update(PersonTokenRow).where(PersonTokenRow.person_id == person_id,
                                                   PersonTokenRow.revoked_at.is_(None))
                      .values(revoked_at=now))

    # -- accounts ---------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str | None = None) -> dict[str, Any]:
        shown, key = clean_name(name), name_key(name)
        check_role(role)
        hashed = hash_password(password) if password is not None else None
        now = self.clock()
        row = PersonRow(name=shown, name_key=key, role=role, password_hash=hashed,
                        disabled=False, created_at=now,
                        password_changed_at=now if hashed else None)
        try:
            with self.sessions.begin() as s:
                s.add(row)
                s.flush()
                return person_dict(row)
        except StoreConflictError:  # the engine's boundary (guardrail.db) maps it
            raise BadRequestError(f"A person named {shown!r} exists already.", param="name",
                                  code="already_exists") from None
        except SQLAlchemyError as exc:
            raise map_store_exception(exc) from exc

    def list(self) -> list[dict[str, Any]]:
        live = (select(PersonTokenRow.person_id, func.count().label("n"))
                .where(PersonTokenRow.revoked_at.is_(None))
                .group_by(PersonTokenRow.person_id).subquery())
        stmt = (select(PersonRow, func.coalesce(live.c.n, 0))
                .outerjoin(live, live.c.person_id == PersonRow.id).order_by(PersonRow.id))
        with self.sessions() as s:
            return [person_dict(p, int(n)) for p, n in s.execute(stmt).all()]

    def get(self, name: str) -> dict[str, Any]:
        with self.sessions() as s:
            return person_dict(self._get(s, name))

    def set_disabled(self, name: str, disabled: bool) -> dict[str, Any]:
        """Disabling signs the person out everywhere; their tokens stop working (and stay
        revoked if the person is enabled again)."""
        with self.sessions.begin() as s:
            row = self._get(s, name)
            row.disabled = disabled
            if disabled:
                self._revoke_all(s, row.id, tokens=True)
            return person_dict(row)

    def reset_password(self, name: str, password: str) -> dict[str, Any]:
        """A new password; every session of the person ends."""
        hashed = hash_password(password)
        with self.sessions.begin() as s:
            row = self._get(s, name)
            row.password_hash, row.password_changed_at = hashed, self.clock()
            self._revoke_all(s, row.id, tokens=False)
            return person_dict(row)

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The person, if the name and password match an enabled account (same cost either
        way). Rehashes a password stored with older argon2 parameters."""
        try:
            key = name_key(name)
        except BadRequestError:
            key = None
        with self.sessions.begin() as s:
            row = (s.execute(select(PersonRow).where(PersonRow.name_key == key)).scalar()
                   if key else None)
            ok = verify_password(row.password_hash if row else None, password)
            if row is None or not ok or row.disabled or row.password_hash is None:
                return None
            if needs_rehash(row.password_hash):
                row.password_hash = hash_password(password)
            return principal(row, "session")

    def set_prefs(self, person_id: int, locale: str | None, timezone: str | None) -> None:
        """The person's page language and time zone (None: the browser's language, UTC);
        callers validate them (:mod:`guardrail.review.i18n`)."""
        with self.sessions.begin() as s:
            row = s.get(PersonRow, person_id)
            if row is None:
                raise NotFoundError(f"No person with id {person_id}.")
            row.locale, row.timezone = locale, timezone

    # -- API tokens -------------------------------------------------------------------------
    def new_token(self, name: str, *, replace: bool = False) -> tuple[dict[str, Any], str]:
        """A new API token for the person (returned once; only its digest is kept).
        ``replace`` revokes the person's other tokens."""
        token = new_secret(TOKEN_PREFIX)
        with self.sessions.begin() as s:
            row = self._get(s, name)
            if row.disabled:
                raise BadRequestError(f"{row.name!r} is disabled.", param="name",
                                      code="person_disabled")
            if replace:
                s.execute(update(PersonTokenRow).where(PersonTokenRow.person_id == row.id,
                                                       PersonTokenRow.revoked_at.is_(None))
                          .values(revoked_at=self.clock()))
            s.add(PersonTokenRow(person_id=row.id, token_hash=digest(token),
                                 created_at=self.clock()))
            return person_dict(row), token

    def by_token(self, token: str) -> Principal | None:
        stmt = (select(PersonRow).join(PersonTokenRow, PersonTokenRow.person_id == PersonRow.id)
                .where(PersonTokenRow.token_hash == digest(token),
                       PersonTokenRow.revoked_at.is_(None), PersonRow.disabled.is_(False)))
        try:
            with self.sessions() as s:
                row = s.execute(stmt).scalar()
                return principal(row, "token") if row else None
        except SQLAlchemyError as exc:
            raise map_store_exception(exc) from exc
