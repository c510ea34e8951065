"""The keyring that encrypts held responses at rest (``cryptography``'s Fernet: AES-128-CBC
with HMAC-SHA256, authenticated, timestamped).

``GUARDRAIL_HOLD_KEYS`` lists keys, newest first: the first encrypts, all decrypt
(:class:`cryptography.fernet.MultiFernet`). Rotation: generate a key
(``guardrail holds keygen``), put it first, run ``guardrail holds rotate`` (re-encrypts every
stored body under the first key), then remove the old key. Without configured keys a key file
is generated once (mode 0600) and start-up logs where it is: fine for one machine, not for
several (they must share keys).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from guardrail.errors import ConfigError, GuardrailError
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.settings import Settings

log = logging.getLogger("guardrail.holds")


class HoldDecryptError(GuardrailError):
    """A held body that no key of the keyring opens (a key was removed too early)."""


def _kid(key: bytes) -> str:
    return "hk_" + hashlib.sha256(key).hexdigest()[:12]


class Keyring:
    def __init__(self, keys: list[bytes], source: str) -> None:
        if not keys:
            raise ConfigError("the hold keyring needs at least one key")
        try:
            self._fernets = [Fernet(k) for k in keys]
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"hold key is not a Fernet key ({source}): {exc}") from None
        self._multi = MultiFernet(self._fernets)
        self.key_ids = [_kid(k) for k in keys]
        self.source = source

    @property
    def current(self) -> str:
        return self.key_ids[0]

    def encrypt(self, data: bytes) -> tuple[str, bytes]:
        return self.current, self._multi.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        try:
            return self._multi.decrypt(token)
        except InvalidToken:
            raise HoldDecryptError("no hold key opens this held response") from None

    def rotate(self, token: bytes) -> bytes:
        try:
            return self._multi.rotate(token)
        except InvalidToken:
            raise HoldDecryptError("no hold key opens this held response") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if settings.hold_keys:
            return cls([k.get_secret_value().encode() for k in settings.hold_keys],
                       "GUARDRAIL_HOLD_KEYS")
        if settings.hold_key_file is None and ":memory:" in settings.database_url:
            # the held bodies live and die with the in-memory database: so does the key
            return cls([Fernet.generate_key()], "ephemeral (in-memory database)")
        path = settings.hold_key_file or _default_key_file(settings.database_url)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            event(log, logging.WARNING, "hold_key_generated", path=str(path),
                  hint="set GUARDRAIL_HOLD_KEYS to share keys between machines")
        return cls([path.read_bytes().strip()], str(path))


def _default_key_file(database_url: str) -> Path:
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        db = Path(database_url.removeprefix("sqlite:///"))
        return db.parent / ".guardrail" / "hold.key"
    return Path(".guardrail") / "hold.key"
