"""In-memory stand-ins for the incident and hold stores, for tests that drive a StreamGuard
without an app."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from weakref import WeakKeyDictionary

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


_DROPPED: WeakKeyDictionary[Any, list[Any]] = WeakKeyDictionary()  # engine -> dropped pools


def cut_store(engine: Any, monkeypatch: Any,
              message: str = "unable to open database file / connection refused") -> None:
    """The database goes away: pooled connections are dropped and every new one fails as the
    driver fails when the file or server cannot be reached (SQLite's or psycopg's own
    ``OperationalError``), until ``monkeypatch`` (or its ``context()``) is undone.

    A connection in use meanwhile (a corpus check in its thread) is returned later to the pool
    that was dropped; that pool is kept on the engine and closed by ``make_server`` once the
    server has stopped, so no connection is left open for the garbage collector."""
    import sqlite3

    dbapi = engine.dialect.dbapi or sqlite3

    def refuse(*_a: object, **_k: object) -> None:
        raise dbapi.OperationalError(message)

    _DROPPED.setdefault(engine, []).append(engine.pool)
    engine.dispose()
    monkeypatch.setattr(engine.dialect, "connect", refuse)


def close_dropped_pools(engine: Any) -> None:
    """Close what :func:`cut_store` dropped (after the server stopped)."""
    for pool in _DROPPED.pop(engine, []):
        pool.dispose()
