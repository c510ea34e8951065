"""FastAPI dependencies (``Annotated`` aliases) shared by every router.

``AppState`` lives on ``app.state.guardrail``; routers reach it only through these.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from guardrail.errors import AuthenticationError, PermissionDeniedError
from guardrail.limits import KeyLimits
from guardrail.people.roles import Perm, Principal
from guardrail.settings import key_id

if TYPE_CHECKING:
    from guardrail.incidents.store import IncidentStore
    from guardrail.metrics import Metrics
    from guardrail.pipeline.runner import Pipeline
    from guardrail.policy import Policy, PolicySet
    from guardrail.proxy.upstream import UpstreamClient
    from guardrail.runtime import Runtime
    from guardrail.settings import ClientKey, Settings


log = logging.getLogger("guardrail")


class BackgroundTasks:
    """Work that must not delay a response but must not be lost either (monitor-mode scans
    and their incident records). Each task is kept here until it ends, so none is garbage
    collected mid-run; the app's lifespan drains them at shutdown."""

    def __init__(self, grace_s: float = 30.0) -> None:
        self.grace_s = grace_s  # how long shutdown waits for them before cancelling
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as a tracked task. Raises RuntimeError outside a running loop (the
        coroutine is closed first, so it is not reported as never awaited)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            raise
        task = loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # the type only: the message of a store or scanner error may quote content
            log.error("background task %s failed: %s", task.get_name(), type(exc).__name__,
                      exc_info=exc if log.isEnabledFor(logging.DEBUG) else None)

    async def drain(self, grace_s: float | None = None) -> None:
        """Wait for every task (including ones spawned meanwhile) up to ``grace_s`` seconds
        (default :attr:`grace_s`), then cancel what is left and wait for it to unwind."""
        grace_s = self.grace_s if grace_s is None else grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._tasks), timeout=remaining)
        left = set(self._tasks)
        if left:
            log.warning("shutdown: cancelling %d background task(s) still running after %.0f s "
                        "(monitor-mode scans whose incidents will not be written)",
                        len(left), grace_s)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)


@dataclass
class AppState:
    settings: Settings
    runtime: Runtime
    store: IncidentStore
    policies: PolicySet
    pipelines: dict[str, Pipeline]
    upstream: UpstreamClient
    metrics: Metrics
    extras: dict[str, Any] = field(default_factory=dict)
    background: BackgroundTasks = field(default_factory=BackgroundTasks)


@dataclass(frozen=True)
class Client:
    """The authenticated caller of a proxy route and the policy that governs it."""

    key_id: str | None
    policy: Policy
    pipeline: Pipeline
    tenant: str | None = None  # from the key's configuration, never from a request header
    limits: KeyLimits = KeyLimits()


async def get_state(request: Request) -> AppState:
    return request.app.state.guardrail  # type: ignore[no-any-return]


State = Annotated["AppState", Depends(get_state)]


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("api-key") or None


async def require_client(request: Request, state: State) -> Client:
    """A client key from ``GUARDRAIL_API_KEYS`` (compared in memory first) or from the store
    (``guardrail keys add``). Dev mode (any key, loopback only) only while neither has one."""
    from guardrail.people import auth

    token = _bearer(request)
    settings = state.settings
    entry: ClientKey | None = None
    kid: str | None = None
    tenant: str | None = None
    policy: Policy | None = None
    if token is not None:
        for key in settings.api_keys:
            if hmac.compare_digest(key.key.get_secret_value().encode(), token.encode()):
                kid, entry = key_id(token), key
                break
    if kid is None and token is not None:
        stored = await auth.stored_client_key(state, token)
        if stored is not None:
            kid, tenant = stored.id, stored.tenant
            if stored.policy is not None:
                policy = state.policies.policies.get(stored.policy)
                if policy is None:
                    raise PermissionDeniedError(
                        f"This key's policy {stored.policy!r} is not loaded on this server.",
                        code="policy_not_loaded")
    if kid is None:
        if settings.dev_mode and not await auth.store_has_client_keys(state):
            kid = key_id(token) if token else None
        elif token is None:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        else:
            raise AuthenticationError("Incorrect API key provided.")
    policy = policy or state.policies.for_key(kid)
    rate, conc = settings.limits_of(entry)
    return Client(key_id=kid, policy=policy, pipeline=state.pipelines[policy.name],
                  tenant=tenant or settings.tenant_of(entry),
                  limits=KeyLimits(rate_per_min=rate, max_concurrency=conc))


ClientDep = Annotated[Client, Depends(require_client)]


def require(perm: Perm, person: bool = False
            ) -> Callable[[Request, AppState], Coroutine[Any, Any, Principal]]:
    """A dependency: the caller's admin key or person token, holding ``perm``; ``person``:
    a person's token only (what a decision must name), refused before the body is read."""

    async def dependency(request: Request, state: State) -> Principal:
        from guardrail.people.auth import api_principal

        who = await api_principal(state, _bearer(request), perm)
        if person and not who.is_person:
            raise PermissionDeniedError(
                "A decision names a person: sign in, or use a person's token "
                "(guardrail users token NAME), not the admin key.", code="person_required")
        return who

    return dependency


require_admin = require(Perm.ADMIN)
AdminDep = Annotated[Principal, Depends(require_admin)]  # the admin key or an admin's token
ReaderDep = Annotated[Principal, Depends(require(Perm.READ_INCIDENTS))]  # any role
ReviewerDep = Annotated[Principal, Depends(require(Perm.REVIEW))]  # reviewer or admin
DeciderDep = Annotated[Principal, Depends(require(Perm.REVIEW, person=True))]  # a person
