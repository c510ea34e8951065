"""FastAPI dependencies (``Annotated`` aliases) shared by every router.

``AppState`` lives on ``app.state.guardrail``; routers reach it only through these.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from guardrail.errors import AuthenticationError, PermissionDeniedError
from guardrail.settings import key_id

if TYPE_CHECKING:
    from guardrail.incidents.store import IncidentStore
    from guardrail.metrics import Metrics
    from guardrail.pipeline.runner import Pipeline
    from guardrail.policy import Policy, PolicySet
    from guardrail.proxy.upstream import UpstreamClient
    from guardrail.runtime import Runtime
    from guardrail.settings import ClientKey, Settings


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


@dataclass(frozen=True)
class Client:
    """The authenticated caller of a proxy route and the policy that governs it."""

    key_id: str | None
    policy: Policy
    pipeline: Pipeline
    tenant: str | None = None  # from the key's configuration, never from a request header


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
    token = _bearer(request)
    settings = state.settings
    entry: ClientKey | None = None
    if settings.dev_mode:
        kid = key_id(token) if token else None
    else:
        if token is None:
            raise AuthenticationError(
                "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        kid = None
        for key in settings.api_keys:
            if hmac.compare_digest(key.key.get_secret_value().encode(), token.encode()):
                kid, entry = key_id(token), key
                break
        if kid is None:
            raise AuthenticationError("Incorrect API key provided.")
    policy = state.policies.for_key(kid)
    return Client(key_id=kid, policy=policy, pipeline=state.pipelines[policy.name],
                  tenant=settings.tenant_of(entry))


ClientDep = Annotated[Client, Depends(require_client)]


async def require_admin(request: Request, state: State) -> str:
    """Admin routes need ``GUARDRAIL_ADMIN_KEY``; without one configured they are refused."""
    admin = state.settings.admin_key
    token = _bearer(request)
    if admin is None:
        raise PermissionDeniedError(
            "Admin routes are disabled: set GUARDRAIL_ADMIN_KEY.", code="admin_disabled"
        )
    if token is None:
        raise AuthenticationError("Missing admin key.", code="missing_api_key")
    if not hmac.compare_digest(admin.get_secret_value().encode(), token.encode()):
        raise AuthenticationError("Incorrect admin key.")
    return key_id(token)


AdminDep = Annotated[str, Depends(require_admin)]
