"""People, passwords, names, sessions and the sign-in limiter, against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guardrail.db import make_engine, upgrade
from guardrail.errors import BadRequestError, NotFoundError
from guardrail.people import passwords
from guardrail.people.ratelimit import SignInLimiter
from guardrail.people.roles import clean_name, name_key
from guardrail.people.sessions import Sessions
from guardrail.people.store import PeopleStore
from tests.people.helpers import PASSWORD


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def people(tmp_path, clock) -> PeopleStore:
    url = f"sqlite:///{tmp_path}/people.db"
    engine = make_engine(url)
    upgrade(url, engine)
    return PeopleStore(engine, clock=clock)


def test_passwords_are_argon2id_and_checked(people):
    people.add("kato", "reviewer", PASSWORD)
    with people.sessions() as s:
        from guardrail.people.models import PersonRow

        stored = s.query(PersonRow).one().password_hash
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert people.authenticate("kato", PASSWORD).role == "reviewer"
    assert people.authenticate("kato", PASSWORD + "x") is None
    assert people.authenticate("nobody", PASSWORD) is None
    with pytest.raises(BadRequestError, match="at least 12"):
        people.add("short", "reviewer", "tooshort")


def test_token_only_accounts_cannot_sign_in(people):
    people.add("ci-bot", "auditor")
    assert people.authenticate("ci-bot", "") is None
    assert passwords.verify_password(None, "anything at all") is False


@pytest.mark.parametrize(("given", "shown", "key"), [
    pytest.param("  山田花子 ", "山田花子", "山田花子", id="japanese"),
    pytest.param("Zoe\u0308", "Zoë", "zoë", id="combining-to-nfc"),
    pytest.param("ＳＡＴＯ", "ＳＡＴＯ", "sato", id="fullwidth"),
])
def test_names_in_any_script(given, shown, key):
    assert clean_name(given) == shown and name_key(given) == key


@pytest.mark.parametrize("bad", [pytest.param("", id="empty"), pytest.param("a\x00b", id="nul"),
                                 pytest.param("x" * 129, id="too-long")])
def test_bad_names(bad):
    with pytest.raises(BadRequestError):
        clean_name(bad)


def test_one_account_per_name_whatever_the_case(people):
    people.add("Sato", "reviewer", PASSWORD)
    with pytest.raises(BadRequestError, match="exists already"):
        people.add("sato", "admin", PASSWORD)
    assert people.authenticate("SATO", PASSWORD).name == "Sato"
    with pytest.raises(BadRequestError, match="Unknown role"):
        people.add("x", "superuser")


def test_tokens_carry_the_role_and_die_with_the_account(people):
    people.add("aud", "auditor")
    _, t1 = people.new_token("aud")
    _, t2 = people.new_token("aud")
    assert t1 != t2 and t1.startswith("gr_pt_")
    assert people.by_token(t1).role == "auditor" and people.by_token(t2).name == "aud"
    _, t3 = people.new_token("aud", replace=True)
    assert people.by_token(t1) is None and people.by_token(t3) is not None
    people.set_disabled("aud", True)
    assert people.by_token(t3) is None
    people.set_disabled("aud", False)
    assert people.by_token(t3) is None  # revoked stays revoked
    assert people.list()[0]["tokens"] == 0
    with pytest.raises(NotFoundError):
        people.new_token("nobody")


def test_sessions_expire_idle_and_absolute(people, clock):
    people.add("kato", "reviewer", PASSWORD)
    who = people.authenticate("kato", PASSWORD)
    sessions = Sessions(people, ttl_s=3600, idle_s=600)
    sid = sessions.create(who)
    got = sessions.get(sid)
    assert got.principal.name == "kato" and len(got.csrf_token) >= 32
    for _ in range(6):  # active every 9 minutes: idle never reached, the lifetime is
        clock.now += timedelta(minutes=9)
        assert sessions.get(sid) is not None
    clock.now += timedelta(minutes=6, seconds=1)
    assert sessions.get(sid) is None  # 3601 s after sign-in
    sid2 = sessions.create(who)
    clock.now += timedelta(minutes=10)
    assert sessions.get(sid2) is None  # idle


def test_revocation_logout_reset_and_disable(people):
    people.add("kato", "reviewer", PASSWORD)
    who = people.authenticate("kato", PASSWORD)
    sessions = Sessions(people, ttl_s=3600, idle_s=600)
    a, b, c = sessions.create(who), sessions.create(who), sessions.create(who)
    sessions.revoke(a)
    assert sessions.get(a) is None and sessions.get(b) is not None
    people.reset_password("kato", "a brand new passphrase")
    assert sessions.get(b) is None and sessions.get(c) is None
    assert people.authenticate("kato", PASSWORD) is None
    d = sessions.create(people.authenticate("kato", "a brand new passphrase"))
    people.set_disabled("kato", True)
    assert sessions.get(d) is None and people.authenticate("kato", "a brand new passphrase") is None
    assert sessions.get("not-a-session") is None and sessions.get(None) is None


def test_signin_limiter_window_and_bound():
    t = [0.0]
    lim = SignInLimiter(3, 60, max_entries=2, clock=lambda: t[0])
    for _ in range(3):
        assert lim.retry_after("kato", "10.0.0.1") == 0
        lim.failed("kato", "10.0.0.1")
    assert lim.retry_after("kato", "10.0.0.1") == 60
    assert lim.retry_after("kato", "10.0.0.2") == 0  # per address
    t[0] = 59.5
    assert lim.retry_after("kato", "10.0.0.1") == 1
    t[0] = 60.0
    assert lim.retry_after("kato", "10.0.0.1") == 0  # the window has passed
    lim.failed("a", "x")
    lim.failed("b", "x")
    lim.failed("c", "x")
    assert len(lim._fails) == 2  # memory stays bounded
    lim.failed("b", "x")
    lim.succeeded("b", "x")
    assert lim.retry_after("b", "x") == 0
