"""Liveness, readiness (what actually runs) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from guardrail import __version__
from guardrail.deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> Response:
    checks: dict[str, Any] = {}
    ok = True
    try:
        await anyio.to_thread.run_sync(state.store.ping)
        checks["store"] = {"ok": True, "dialect": state.store.engine.dialect.name}
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        ok = False
        checks["store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    policies: dict[str, dict[str, Any]] = {}
    for name, pipe in state.pipelines.items():
        policies[name] = {"version": pipe.policy.version, "system": pipe.policy.system,
                          "holdback_chars": pipe.holdback_chars, "scanners": pipe.describe()}
    degraded = [s["name"] for p in policies.values() for s in p["scanners"]
                if s.get("degraded") or not s.get("loaded", True)]
    body = {
        "status": "ready" if ok else "not_ready",
        "version": __version__,
        "checks": checks,
        "default_policy": state.policies.default,
        "policies": policies,
        "degraded_scanners": sorted(set(degraded)),
        "upstream": state.upstream.describe() | {"scripted": state.extras.get("scripted", False)},
        "auth": {"dev_mode": state.settings.dev_mode,
                 "admin_enabled": state.settings.admin_key is not None},
        **{k: v for k, v in state.extras.items() if k.startswith("ready_")},
    }
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
