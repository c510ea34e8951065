"""The hold keyring: encryption at rest, rotation, and keys that must not be lost."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from guardrail.cli import main
from guardrail.errors import ConfigError
from guardrail.holds.crypto import HoldDecryptError, Keyring
from guardrail.holds.store import HoldStore
from guardrail.settings import Settings


def put(holds: HoldStore, rid: str, body: bytes) -> None:
    holds.put(response_id=rid, body=body, media_type="application/json", tenant="t",
              api_key_id="k", policy_name="default", request_id="r", route="/v1/x",
              incident_ids=[], expire_after_minutes=5)


def test_rotation_re_encrypts_under_the_new_key(tmp_path, monkeypatch, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path}/g.db"
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", url)
    monkeypatch.setenv("GUARDRAIL_HOLD_KEYS", old)
    from guardrail.holds.cli import _holds

    holds = _holds()
    put(holds, "hr_1", b'{"secret": 1}')
    monkeypatch.setenv("GUARDRAIL_HOLD_KEYS", f"{new},{old}")
    assert main(["holds", "rotate"]) == 0
    assert "re-encrypted 1 held response(s)" in capsys.readouterr().out
    monkeypatch.setenv("GUARDRAIL_HOLD_KEYS", new)  # the old key is gone: still readable
    holds = _holds()
    assert holds.reviewer_body("hr_1") == b'{"secret": 1}'
    monkeypatch.setenv("GUARDRAIL_HOLD_KEYS", Fernet.generate_key().decode())
    with pytest.raises(HoldDecryptError):
        _holds().reviewer_body("hr_1")


def test_generated_key_file_is_private_and_reused(tmp_path):
    s = Settings(database_url=f"sqlite:///{tmp_path}/g.db")
    a = Keyring.from_settings(s)
    path = tmp_path / ".guardrail" / "hold.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert Keyring.from_settings(s).current == a.current


def test_a_bad_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a Fernet key"):
        Keyring.from_settings(Settings(database_url=f"sqlite:///{tmp_path}/g.db",
                                       hold_keys=["not-a-key"]))


def test_keygen_prints_a_usable_key(capsys):
    assert main(["holds", "keygen"]) == 0
    Fernet(capsys.readouterr().out.strip().encode())
