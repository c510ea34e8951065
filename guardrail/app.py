"""Application factory: ``create_app(settings)`` wires state, routers and error handlers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardrail import __version__
from guardrail.db import make_engine, require_current, upgrade
from guardrail.deps import AppState
from guardrail.errors import ApiError, GuardrailError, StoreError, UpstreamError, api_error_of
from guardrail.incidents.store import IncidentStore
from guardrail.logs import event
from guardrail.metrics import Metrics, RouteLabels, multiprocess
from guardrail.pipeline.runner import Pipeline, ScannerCache
from guardrail.policy import PolicySet
from guardrail.proxy.image_fetch import ImageFetcher
from guardrail.proxy.scripted import ScriptedTransport
from guardrail.proxy.upstream import UpstreamClient
from guardrail.runtime import Runtime
from guardrail.settings import Settings

log = logging.getLogger("guardrail")
access_log = logging.getLogger("guardrail.access")

SCRIPTED_BASE = "http://scripted-upstream.guardrail.invalid/v1"


def build_state(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> AppState:
    engine = make_engine(settings.database_url)
    if settings.auto_migrate:
        upgrade(settings.database_url, engine)
    else:  # many workers or nodes: `guardrail db upgrade` ran once before them
        require_current(engine)
    store = IncidentStore(engine)
    runtime = Runtime(settings=settings, engine=engine)
    policies = PolicySet.load(settings.policy_dir, list(settings.policy_files),
                              settings.default_policy, settings.key_policy_map())
    metrics = Metrics()
    cache: ScannerCache = runtime.service("scanners", lambda: ScannerCache(runtime))
    pipelines = {name: Pipeline(p, cache, observer=metrics.observe_scan,
                                on_failure=metrics.observe_failure)
                 for name, p in policies.policies.items()}
    scripted = settings.upstream_url is None and transport is None
    upstream = UpstreamClient(
        settings.upstream_url or SCRIPTED_BASE,
        settings.upstream_api_key.get_secret_value() if settings.upstream_api_key else None,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
        max_connections=settings.upstream_max_connections,
        transport=ScriptedTransport() if scripted else transport,
    )
    state = AppState(settings=settings, runtime=runtime, store=store, policies=policies,
                     pipelines=pipelines, upstream=upstream, metrics=metrics,
                     extras={"scripted": scripted, "image_fetcher": ImageFetcher.from_settings(
                         settings, ScriptedTransport() if scripted else transport)})
    if not multiprocess():  # (multiprocess: set at each scrape, admin/health.py)
        metrics.background_tasks.set_function(lambda: len(state.background))
    from guardrail.holds.crypto import Keyring
    from guardrail.holds.store import HoldStore
    from guardrail.labelling.service import setup_labelling
    from guardrail.limits import build_limits

    state.extras["holds"] = HoldStore(store, Keyring.from_settings(settings))
    state.extras["limits"] = build_limits(settings.redis_url, settings.redis_namespace)
    from guardrail.incidents.outbox import Outbox, outbox_dir
    from guardrail.labelling.counts import LabelCounts

    state.extras["label_counts"] = LabelCounts(store)
    state.extras["outbox"] = Outbox(settings.outbox_dir or outbox_dir(settings.database_url))

    setup_labelling(state)
    _setup_optional(state, "guardrail.governance.setup")  # inventory, assessments (issue 14)
    _announce(state)
    return state


def _setup_optional(state: AppState, module: str) -> None:
    """``module.setup(state)`` where the module exists (it may raise ConfigError)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module).setup(state)


def _include_optional(app: FastAPI, module: str) -> None:
    """Include ``module.routers`` (a list of APIRouter) where the module exists."""
    import importlib
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        for r in importlib.import_module(module).routers:
            app.include_router(r)


TIER_DETAILS = ("cascade", "gate_model", "sentence_check", "route_sentences", "route_power",
                "route_escalate")


def _announce(state: AppState) -> None:
    s = state.settings
    log.info("guardrail %s: store=%s policies=%s default=%s", __version__,
             state.store.engine.dialect.name, sorted(state.policies.policies),
             state.policies.default)
    for name, pipe in state.pipelines.items():
        for sc in pipe.describe():
            details = sc.get("details") or {}
            # the embedded harm model's tiers: which stages run and how chunks are routed
            tiers = "".join(f" {k}={details[k]}" for k in TIER_DETAILS
                            if details.get(k) is not None)
            log.info("policy %s@%s scanner %s: enforcement=%s backend=%s model=%s version=%s%s%s%s",
                     name, pipe.policy.version, sc["name"], sc.get("enforcement", "enforce"),
                     sc["backend"], sc["model"] or "-", sc["model_version"] or "-",
                     f" encoder={details['encoder']}" if details.get("encoder") else "", tiers,
                     f" DEGRADED: {sc['degraded']}" if sc.get("degraded") else "")
            if sc.get("degraded"):
                event(log, logging.WARNING, "scanner_degraded",
                      policy=f"{name}@{pipe.policy.version}", scanner=sc["name"],
                      backend=sc["backend"], loaded=sc.get("loaded", True),
                      degraded=sc["degraded"])
    if state.extras.get("scripted"):
        log.warning("!!! NO UPSTREAM CONFIGURED: using the built-in SCRIPTED upstream (canned "
                    "replies). Set GUARDRAIL_UPSTREAM_URL to proxy a real endpoint. !!!")
    else:
        log.info("upstream: %s (api key %s)", state.upstream.base_url,
                 "configured" if s.upstream_api_key else "not set")
    if s.dev_mode:
        log.warning("!!! DEV MODE: no GUARDRAIL_API_KEYS set; ANY client key is accepted. "
                    "Loopback only. !!!")
    holds = state.extras.get("holds")
    if holds is not None:
        log.info("held responses: encrypted with %s (key %s)", holds.keyring.source,
                 holds.keyring.current)
    if s.admin_key is None:
        log.info("GUARDRAIL_ADMIN_KEY not set: admin routes take people's tokens only "
                 "(guardrail users token NAME).")


class RequestContextMiddleware:
    """Request id, in-flight gauge, request counter and the access log line (method, route
    template, status, ms: never the raw path, query string or a header), as plain ASGI (no
    body buffering)."""

    def __init__(self, app: ASGIApp, metrics_getter: Any) -> None:
        self.app = app
        self.metrics_getter = metrics_getter
        self.routes = RouteLabels()  # by route template: arbitrary paths add no series

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics: Metrics = self.metrics_getter()
        route = self.routes.before(scope)
        rid = "req_" + uuid.uuid4().hex[:20]
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-guardrail-request-id" for k, _ in headers):
                    headers.append((b"x-guardrail-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        gauge = metrics.in_flight.labels(route)
        gauge.inc()
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            gauge.dec()
            template = self.routes.after(scope)
            metrics.requests.labels(template, str(status["code"])).inc()
            event(access_log, logging.INFO, "access", method=scope.get("method"),
                  route=template, status=status["code"],
                  ms=round((time.perf_counter() - t0) * 1000, 1), request_id=rid)


def _error(exc: ApiError) -> Response:
    if isinstance(exc, UpstreamError):
        return Response(exc.content, status_code=exc.status_code, media_type=exc.content_type)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def worker_app() -> FastAPI:
    """The app one of ``guardrail serve --workers N``'s processes serves (settings from the
    environment, the operations log configured as ``guardrail serve`` does)."""
    from guardrail import logs

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or Settings()
    state = build_state(settings, transport)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.extras["started_at"] = time.time()
        from guardrail.corpus.sync import sync_forever as corpus_sync_forever
        from guardrail.incidents.outbox import replay_forever
        from guardrail.labelling.counts import flush_forever
        from guardrail.memory import trim_forever
        from guardrail.review.decisions import sweep_forever

        tasks = [asyncio.create_task(sweep_forever(state), name="guardrail-hold-sweep"),
                 asyncio.create_task(corpus_sync_forever(state), name="guardrail-corpus-sync"),
                 asyncio.create_task(flush_forever(state), name="guardrail-label-counts"),
                 asyncio.create_task(trim_forever(state), name="guardrail-malloc-trim"),
                 asyncio.create_task(replay_forever(state), name="guardrail-outbox-replay")]
        yield
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # monitor-mode scans still running write their incidents before the store closes
        await state.background.drain()
        await anyio.to_thread.run_sync(state.extras["label_counts"].flush)
        await state.upstream.aclose()
        closer = getattr(state.extras["limits"], "aclose", None)
        if closer is not None:
            await closer()
        await state.extras["image_fetcher"].aclose()
        # scanners' worker pools, harm batchers and model threads, remote backends' clients
        await state.runtime.aclose()
        gov = state.extras.get("governance")  # its models_seen writer thread holds connections
        seen = getattr(gov, "seen_store", None)
        if seen is not None:
            await seen.aclose()
        state.store.engine.dispose()

    docs: dict[str, Any] = ({} if settings.api_docs else  # off unless asked for (development)
                            {"docs_url": None, "redoc_url": None, "openapi_url": None})
    app = FastAPI(title="guardrail", version=__version__, lifespan=lifespan, **docs)
    app.state.guardrail = state

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> Response:
        return _error(exc)

    @app.exception_handler(GuardrailError)
    async def _ours(request: Request, exc: GuardrailError) -> Response:
        # a store outage is 503 in OpenAI's format, never a bare 500; the log line names the
        # error's type only (a store's message may quote a key or a name)
        name = "store_unavailable" if isinstance(exc, StoreError) else "internal_error"
        event(log, logging.ERROR, name, request_id=getattr(request.state, "request_id", None),
              error=type(exc).__name__)
        return _error(api_error_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse({"error": {"message": f"Invalid request: {first.get('msg', exc)}",
                                       "type": "invalid_request_error", "param": param,
                                       "code": "invalid_value"}}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse({"error": {"message": str(exc.detail), "type": "invalid_request_error",
                                       "param": None, "code": code}},
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unhandled(_r: Request, exc: Exception) -> Response:
        event(log, logging.ERROR, "unhandled_error", exc_info=exc, error=type(exc).__name__)
        return JSONResponse({"error": {"message": "Internal error in guardrail.",
                                       "type": "server_error", "param": None,
                                       "code": "internal_error"}}, status_code=500)

    from guardrail.admin import health, incidents
    from guardrail.holds import routes as hold_routes
    from guardrail.labelling import routes as labelling_routes
    from guardrail.proxy import images
    from guardrail.proxy import routes as proxy_routes

    app.include_router(proxy_routes.router)
    app.include_router(images.router)
    app.include_router(labelling_routes.router)
    from guardrail.corpus import routes as corpus_routes
    from guardrail.review import routes as review_routes

    app.include_router(corpus_routes.router)

    app.include_router(review_routes.api)
    app.include_router(hold_routes.router)
    _include_optional(app, "guardrail.governance.routes")  # inventory, redress, report
    app.include_router(review_routes.pages)
    app.include_router(incidents.router)
    app.include_router(health.router)
    app.add_middleware(RequestContextMiddleware, metrics_getter=lambda: state.metrics)
    return app
