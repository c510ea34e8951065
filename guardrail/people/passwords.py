"""Password hashing (argon2id via argon2-cffi) and the random secrets people are given."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from guardrail.errors import BadRequestError

MIN_PASSWORD = 12
MAX_PASSWORD = 1024

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (t=3, m=64 MiB, p=4)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise BadRequestError(f"A password has at least {MIN_PASSWORD} characters.",
                              param="password", code="password_too_short")
    if len(password) > MAX_PASSWORD:
        raise BadRequestError(f"A password has at most {MAX_PASSWORD} characters.",
                              param="password", code="password_too_long")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``. With no stored hash (unknown person, or a
    token-only account) a dummy hash is checked instead, so the answer takes as long."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def new_secret(prefix: str) -> str:
    """A 256-bit random credential (URL-safe, no ``:`` or ``,``), e.g. ``gr_pt_...``."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a random credential (session id, person token, client key)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
