"""In-memory stand-ins for the incident and hold stores, for tests that drive a StreamGuard
without an app."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from guardrail.metrics import Metrics


class FakeStore:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    async def append_async(self, drafts: list[Any]) -> list[str]:
        self.rows += drafts
        return [d.id for d in drafts]


class FakeHolds:
    """Keeps held bodies in clear (the real store encrypts): response id -> put() kwargs."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {}

    async def put_async(self, **kw: Any) -> str:
        self.held[kw["response_id"]] = kw
        return str(kw["response_id"])


def fake_state() -> Any:
    return SimpleNamespace(store=FakeStore(), metrics=Metrics(), extras={"holds": FakeHolds()})
