"""Shared fixtures: a real fake upstream over HTTP and a real guardrail server."""

from __future__ import annotations

import os
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.mocks.fake_upstream import build_fake_upstream
from tests.mocks.servers import ThreadedServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GUARDRAIL_C2PA_DEV_PKI_DIR",
                      tempfile.mkdtemp(prefix="guardrail-test-pki-"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CLIENT_KEY = "sk-client-test-key"
ADMIN_KEY = "admin-test-key"
UPSTREAM_KEY = "sk-upstream-secret"


@pytest.fixture(autouse=True)
def _close_sdk_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``openai.OpenAI`` client a test makes is closed when the test ends. Tests build
    them inline and drop them; their pooled keep-alive sockets were then closed by the cyclic
    garbage collector at some later moment, an unraisable ``ResourceWarning`` (an error here)
    that failed whichever test happened to be running (seen in CI on
    ``test_visible_notice_streaming_and_not``)."""
    import openai

    made: list[openai.OpenAI] = []
    real_init = openai.OpenAI.__init__

    def init(self: openai.OpenAI, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(openai.OpenAI, "__init__", init)
    yield
    for client in made:
        client.close()


@dataclass
class FakeUpstream:
    server: ThreadedServer

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.server.config.app.state.requests  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    srv = ThreadedServer(build_fake_upstream()).start()
    yield FakeUpstream(srv)
    srv.stop()


@dataclass
class Server:
    base_url: str
    root_url: str
    client_key: str
    admin_key: str
    store: Any
    app: Any
    settings: Any

    @property
    def state(self) -> Any:
        return self.app.state.guardrail


@pytest.fixture
def make_server(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> Iterator[Callable[..., Server]]:
    """Start the real proxy (uvicorn, free port) with the given policy YAML.

    Keyword arguments override :class:`guardrail.settings.Settings` fields.
    """
    from contextlib import ExitStack

    from guardrail.app import create_app
    from guardrail.settings import Settings
    from tests.mocks.stores import close_dropped_pools
    from tests.services import pg_schema, require_redis, store_kind

    started: list[ThreadedServer] = []
    schemas = ExitStack()

    def start(policy_yaml: str | None = None, **overrides: Any) -> Server:
        pdir = tmp_path / f"policies{len(started)}"
        pdir.mkdir()
        if policy_yaml is not None:
            (pdir / "default.yaml").write_text(textwrap.dedent(policy_yaml), encoding="utf-8")
        else:
            (pdir / "default.yaml").write_text("name: default\nscanners: []\n")
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path}/guardrail{len(started)}.db",
            "policy_dir": pdir,
            "upstream_url": fake_upstream.base_url,
            "upstream_api_key": UPSTREAM_KEY,
            "api_keys": [CLIENT_KEY],
            "admin_key": ADMIN_KEY,
            "upstream_read_timeout_s": 10.0,
        }
        if store_kind() == "postgres":  # the same tests on PostgreSQL and Redis
            values["database_url"] = schemas.enter_context(pg_schema())
            values["redis_url"] = require_redis()
            values["redis_namespace"] = "test-" + uuid.uuid4().hex[:12]  # counts of its own
            values["corpus_index_dir"] = tmp_path / f"index{len(started)}"  # its own index
        values.update(overrides)
        settings = Settings(**values)
        app = create_app(settings)
        srv = ThreadedServer(app).start()
        started.append(srv)
        return Server(base_url=srv.url + "/v1", root_url=srv.url, client_key=CLIENT_KEY,
                      admin_key=ADMIN_KEY, store=app.state.guardrail.store, app=app,
                      settings=settings)

    yield start
    for srv in started:
        srv.stop()
    for srv in started:
        engine = srv.server.config.app.state.guardrail.store.engine
        engine.dispose()
        close_dropped_pools(engine)  # what cut_store dropped while a connection was in use
    schemas.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``GUARDRAIL_TEST_STORE=postgres`` (the second pass in ``.ci/run``) runs only the tests
    whose behaviour it changes: those that start a server with ``make_server`` (directly or
    through another fixture). Every other test ran in the first pass exactly as it would here
    (the tests that need PostgreSQL or Redis themselves open them in both passes)."""
    from tests.services import store_kind

    if store_kind() != "postgres":
        return
    keep = [it for it in items if "make_server" in getattr(it, "fixturenames", ())]
    dropped = [it for it in items if "make_server" not in getattr(it, "fixturenames", ())]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
