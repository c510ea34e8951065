"""What an unauthenticated caller can see or grow: metrics series, readiness, API docs."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from guardrail.proxy.scripted import ScriptedTransport

CLIENT, ADMIN = "sk-client", "admin-secret"
UPSTREAM = "http://upstream.internal.example:9000/v1"

AppFactory = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


@pytest.fixture
def open_app(tmp_path: Path) -> AppFactory:
    from guardrail.app import create_app
    from guardrail.settings import Settings

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        pdir = tmp_path / "policies"
        pdir.mkdir(exist_ok=True)
        (pdir / "default.yaml").write_text("name: default\nscanners: []\n", encoding="utf-8")
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path}/s.db", "policy_dir": pdir,
            "upstream_url": UPSTREAM, "api_keys": [CLIENT], "admin_key": ADMIN, **overrides}
        app = create_app(Settings(**values), transport=ScriptedTransport(delay_s=0))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://guardrail") as client:
            yield client, app.state.guardrail
        app.state.guardrail.store.engine.dispose()

    return start


def _routes(state: Any, family: str = "guardrail_requests") -> set[str]:
    text = state.metrics.render().decode()
    return {s.labels["route"] for fam in text_string_to_metric_families(text)
            if fam.name == family for s in fam.samples}


def _word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))


async def test_arbitrary_paths_do_not_create_metric_series(open_app: AppFactory) -> None:
    rng = random.Random(12)
    async with open_app() as (client, state):
        for i in range(50):
            w = _word(rng)
            path = [f"/v1/{w}", f"/{w}", f"/v1/guardrail/{w}", f"/{w}/{w}/{w}",
                    f"/v1/chat/{w}"][i % 5]
            assert (await client.get(path)).status_code == 404
        for _ in range(5):  # a templated route: one series whatever the id
            r = await client.get(f"/v1/guardrail/incidents/inc_{_word(rng)}",
                                 headers={"Authorization": f"Bearer {ADMIN}"})
            assert r.status_code == 404
        r = await client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {CLIENT}"},
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        assert (await client.get("/v1/chat/completions")).status_code == 405  # known path
        routes, in_flight = _routes(state), _routes(state, "guardrail_in_flight_requests")
    assert routes == {"other", "/v1/guardrail/incidents/{incident_id}", "/v1/chat/completions"}
    assert in_flight <= routes  # the gauge, labelled before routing, is bounded the same way
    assert "/v1/guardrail/incidents/{incident_id}" in in_flight  # a route seen before


async def test_public_readiness_says_ready_and_nothing_more(open_app: AppFactory) -> None:
    async with open_app() as (client, state):
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        assert "upstream.internal" not in ready.text

        def down() -> None:
            raise OSError("database is on fire at /var/lib/secret/path")

        state.store.ping = down
        not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json() == {"status": "not_ready"}


async def test_readiness_details_need_the_admin_key(open_app: AppFactory) -> None:
    async with open_app() as (client, _state):
        anonymous = await client.get("/v1/guardrail/readyz")
        as_client = await client.get("/v1/guardrail/readyz",
                                     headers={"Authorization": f"Bearer {CLIENT}"})
        as_admin = await client.get("/v1/guardrail/readyz",
                                    headers={"Authorization": f"Bearer {ADMIN}"})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_api_key"
    assert as_client.status_code == 401
    assert as_admin.status_code == 200
    body = as_admin.json()
    assert body["status"] == "ready" and body["checks"]["store"]["ok"] is True
    assert body["upstream"]["base_url"] == UPSTREAM
    assert body["policies"]["default"]["scanners"] == []


async def test_api_docs_are_off_unless_asked_for(open_app: AppFactory) -> None:
    async with open_app() as (client, _state):
        off = [(await client.get(p)).status_code for p in ("/docs", "/redoc", "/openapi.json")]
    async with open_app(api_docs=True) as (client, _state):
        on = [(await client.get(p)).status_code for p in ("/docs", "/redoc", "/openapi.json")]
        schema = (await client.get("/openapi.json")).json()
    assert off == [404, 404, 404]
    assert on == [200, 200, 200] and "/v1/chat/completions" in schema["paths"]
