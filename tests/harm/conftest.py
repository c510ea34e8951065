"""Fixtures for the harm tests: the fake moderation / judge server over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harm.fake_remote import build_fake_remote
from tests.mocks.servers import ThreadedServer


class FakeRemote:
    def __init__(self, server: ThreadedServer) -> None:
        self.server = server
        self.url = server.url + "/v1"

    @property
    def app(self) -> Any:
        return self.server.server.config.app

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app.state.requests  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def fake_remote_server() -> Iterator[FakeRemote]:
    srv = ThreadedServer(build_fake_remote()).start()
    yield FakeRemote(srv)
    srv.stop()


@pytest.fixture
def fake_remote(fake_remote_server: FakeRemote) -> FakeRemote:
    fake_remote_server.requests.clear()
    fake_remote_server.app.state.sleep_s = 5.0
    return fake_remote_server
