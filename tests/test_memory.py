"""Freed heap memory is given back to the OS (glibc malloc_trim) by a lifespan task."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from guardrail import memory


def test_trimmer_is_found_on_glibc_and_runs():
    trim = memory._trimmer()
    assert trim is not None  # Debian: glibc
    assert trim() in (0, 1)


def test_trim_task_calls_it_periodically(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(memory, "_trimmer", lambda: lambda: calls.append(1) or 1)
    state = SimpleNamespace(settings=SimpleNamespace(malloc_trim_s=0.01))

    async def go() -> None:
        task = asyncio.create_task(memory.trim_forever(state))
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(go())
    assert len(calls) >= 3


def test_zero_disables_it(monkeypatch):
    monkeypatch.setattr(memory, "_trimmer", lambda: (_ for _ in ()).throw(AssertionError))
    state = SimpleNamespace(settings=SimpleNamespace(malloc_trim_s=0))
    asyncio.run(asyncio.wait_for(memory.trim_forever(state), 1))
