"""Authentication in one place: the admin API's bearer credentials, client keys from the
store, and the objects (people store, sessions, sign-in limiter) kept on the app state."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

import anyio

from guardrail.errors import AuthenticationError, PermissionDeniedError
from guardrail.people.keys import ClientKeys, StoredKey
from guardrail.people.ratelimit import RedisSignInLimiter, SignInLimiter, build_limiter
from guardrail.people.roles import Perm, Principal
from guardrail.people.sessions import Sessions
from guardrail.people.store import PeopleStore
from guardrail.settings import key_id

if TYPE_CHECKING:
    from guardrail.deps import AppState


def _extras(state: AppState) -> dict[str, Any]:
    extras: dict[str, Any] = state.extras
    return extras


def people_store(state: AppState) -> PeopleStore:
    """The app's :class:`PeopleStore` (same database as the incidents), made on first use."""
    extras = _extras(state)
    if "people" not in extras:
        extras["people"] = PeopleStore(state.store.engine)
    store: PeopleStore = extras["people"]
    return store


def sessions(state: AppState) -> Sessions:
    extras = _extras(state)
    if "sessions" not in extras:
        s = state.settings
        extras["sessions"] = Sessions(people_store(state), ttl_s=s.session_ttl_s,
                                      idle_s=s.session_idle_s)
    out: Sessions = extras["sessions"]
    return out


def signin_limiter(state: AppState) -> SignInLimiter | RedisSignInLimiter:
    extras = _extras(state)
    if "signin_limiter" not in extras:
        s = state.settings
        extras["signin_limiter"] = build_limiter(s.redis_url, s.signin_max_failures,
                                                 s.signin_window_s, "signin",
                                                 s.redis_namespace)
    out: SignInLimiter | RedisSignInLimiter = extras["signin_limiter"]
    return out


def client_keys(state: AppState) -> ClientKeys:
    return ClientKeys(people_store(state))


async def api_principal(state: AppState, token: str | None, perm: Perm) -> Principal:
    """Who ``token`` (a bearer credential) is, if they hold ``perm``: the admin key (admin
    role, compared first, with no store access) or a person's API token."""
    admin = state.settings.admin_key
    if token is None:
        raise AuthenticationError("Missing admin key or person token: send "
                                  "'Authorization: Bearer <token>'.", code="missing_api_key")
    if admin is not None and hmac.compare_digest(admin.get_secret_value().encode(),
                                                 token.encode()):
        who = Principal(name="admin-key", role="admin", via="admin_key", key_id=key_id(token))
    else:
        person = await anyio.to_thread.run_sync(people_store(state).by_token, token)
        if person is None:
            raise AuthenticationError("Incorrect admin key or person token.")
        who = person
    if not who.can(perm):
        raise PermissionDeniedError(f"The {who.role} role cannot do this ({perm.value}).",
                                    code="insufficient_role")
    return who


async def stored_client_key(state: AppState, token: str) -> StoredKey | None:
    return await anyio.to_thread.run_sync(client_keys(state).lookup, token)


async def store_has_client_keys(state: AppState) -> bool:
    return await anyio.to_thread.run_sync(client_keys(state).any_live)
