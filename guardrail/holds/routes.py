"""``GET /v1/guardrail/responses/{response_id}``: the held application fetches its response.

With the client's own key (the tenant must match the one that was held): 202 with the status
object while a person has not decided, 200 with the original OpenAI-format body once released
(its ``guardrail`` object says ``released``), 410 after rejection or a rejecting expiry, 404
for an unknown id or another tenant's.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from guardrail.deps import ClientDep, State
from guardrail.errors import GoneError, NotFoundError
from guardrail.holds.store import PENDING, REJECTED, HoldStore

router = APIRouter(prefix="/v1/guardrail/responses", tags=["holds"])


@router.get("/{response_id}")
async def held_response(response_id: str, state: State, client: ClientDep) -> Response:
    holds: HoldStore = state.extras["holds"]
    view = await anyio.to_thread.run_sync(holds.view, response_id)
    if view is None or view.tenant != client.tenant:
        raise NotFoundError(f"No held response with id {response_id!r}.")
    if view.status == PENDING:
        return JSONResponse(view.public(), status_code=202, headers={"Retry-After": "30"})
    if view.status == REJECTED:
        why = "expired and was rejected" if view.expired else "was rejected by a reviewer"
        raise GoneError(f"Held response {response_id} {why}; it will not be released.",
                        code="response_rejected")
    body = await anyio.to_thread.run_sync(holds.body, response_id)
    if body is None:
        raise GoneError(f"Held response {response_id} is no longer stored.",
                        code="response_purged")
    data: dict[str, Any] = json.loads(body)
    g = data.get("guardrail")
    g = g if isinstance(g, dict) else {}
    data["guardrail"] = {**g, "decision": "released", "response_id": response_id,
                         "held": view.public()}
    return JSONResponse(data, headers={"X-Guardrail-Decision": "released"})
