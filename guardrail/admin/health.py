"""Liveness, readiness and Prometheus metrics.

``/healthz`` and ``/readyz`` are public and say only whether the process is up and ready to
serve (status code and ``{"status": ...}``). What actually runs (policies, scanners and their
models, the upstream, labelling) is behind the admin key at ``/v1/guardrail/readyz``.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from guardrail import __version__
from guardrail.deps import AdminDep, AppState, State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _store_check(state: AppState) -> dict[str, Any]:
    try:
        await anyio.to_thread.run_sync(state.store.ping)
    except Exception as exc:  # noqa: BLE001 - readiness reports, never raises
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"ok": True, "dialect": state.store.engine.dialect.name}


def _status(ok: bool) -> tuple[str, int]:
    return ("ready", 200) if ok else ("not_ready", 503)


@router.get("/readyz")
async def readyz(state: State) -> Response:
    """Ready or not, and nothing more (details: ``/v1/guardrail/readyz`` with the admin key)."""
    status, code = _status((await _store_check(state))["ok"])
    return JSONResponse({"status": status}, status_code=code)


@router.get("/v1/guardrail/readyz")
async def readyz_details(state: State, _admin: AdminDep) -> Response:
    """Readiness with what actually runs: policies, scanners, upstream, auth, labelling."""
    store = await _store_check(state)
    policies: dict[str, dict[str, Any]] = {}
    for name, pipe in state.pipelines.items():
        policies[name] = {"version": pipe.policy.version, "system": pipe.policy.system,
                          "holdback_chars": pipe.holdback_chars, "scanners": pipe.describe()}
    degraded = [s["name"] for p in policies.values() for s in p["scanners"]
                if s.get("degraded") or not s.get("loaded", True)]
    status, code = _status(store["ok"])
    body = {
        "status": status,
        "version": __version__,
        "checks": {"store": store},
        "default_policy": state.policies.default,
        "policies": policies,
        "degraded_scanners": sorted(set(degraded)),
        "upstream": state.upstream.describe() | {"scripted": state.extras.get("scripted", False)},
        "holds": {"keyring": state.extras["holds"].keyring.source,
                  "current_key": state.extras["holds"].keyring.current,
                  "keys": len(state.extras["holds"].keyring.key_ids)},
        "auth": {"dev_mode": state.settings.dev_mode,
                 "admin_enabled": state.settings.admin_key is not None},
        **{k: v for k, v in state.extras.items() if k.startswith("ready_")},
    }
    return JSONResponse(body, status_code=code)


@router.get("/metrics")
async def metrics(state: State) -> Response:
    from guardrail.metrics import multiprocess
    from guardrail.review.decisions import refresh_gauges

    if multiprocess():  # this worker's share (the others' as of their last scrape)
        state.metrics.background_tasks.set(len(state.background))
    try:  # the queue gauges are read from the store at scrape time
        await anyio.to_thread.run_sync(refresh_gauges, state)
    except Exception:  # noqa: BLE001 - a store outage must not hide the other metrics
        state.metrics.queue_overdue.set(float("nan"))
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
