"""Micro-batcher: batching of concurrent callers, back-pressure, errors, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from guardrail.harm.batcher import BatcherPool, MicroBatcher, QueueFullError


class Recorder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.gate = gate

    def __call__(self, items: list[str]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        return [s.upper() for s in items]


async def test_concurrent_requests_share_batches_off_the_loop() -> None:
    rec = Recorder()
    b = MicroBatcher(rec, max_batch=8, max_wait_ms=50)
    out = await asyncio.gather(*(b.submit(f"t{i}") for i in range(8)))
    assert out == [f"T{i}" for i in range(8)]
    assert len(rec.batches) < 8  # at least some items shared a model call
    assert max(len(x) for x in rec.batches) <= 8
    assert threading.main_thread().name not in rec.threads
    await b.aclose()


async def test_max_batch_is_respected() -> None:
    rec = Recorder()
    b = MicroBatcher(rec, max_batch=3, max_wait_ms=20)
    out = await b.submit_many([str(i) for i in range(10)])
    assert out == [str(i) for i in range(10)]
    assert all(len(x) <= 3 for x in rec.batches) and sum(map(len, rec.batches)) == 10
    await b.aclose()


async def test_backpressure_waits_then_rejects_when_configured() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=1, max_wait_ms=0, max_queue=2)
    first = asyncio.create_task(b.submit("a"))  # taken by the worker, blocked in the model
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(b.submit(x)) for x in "bc"]  # fill the queue
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(b.submit("d"))  # no room: waits (back-pressure)
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.set()
    assert await asyncio.gather(first, *queued, waiting) == ["A", "B", "C", "D"]
    await b.aclose()

    gate2 = threading.Event()
    r = MicroBatcher(Recorder(gate2), max_batch=1, max_wait_ms=0, max_queue=1,
                     reject_when_full=True)
    t1 = asyncio.create_task(r.submit("a"))
    await asyncio.sleep(0.05)
    t2 = asyncio.create_task(r.submit("b"))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError):
        await r.submit("c")
    gate2.set()
    assert await asyncio.gather(t1, t2) == ["A", "B"]
    await r.aclose()


async def test_model_error_reaches_every_caller_and_batcher_survives() -> None:
    calls = {"n": 0}

    def flaky(items: list[str]) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return items

    b = MicroBatcher(flaky, max_batch=4, max_wait_ms=20)
    res = await asyncio.gather(b.submit("x"), b.submit("y"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in res)
    assert await b.submit("z") == "z"
    await b.aclose()


async def test_cancelled_caller_items_are_skipped() -> None:
    gate = threading.Event()
    rec = Recorder(gate)
    b = MicroBatcher(rec, max_batch=1, max_wait_ms=0)
    first = asyncio.create_task(b.submit("a"))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(b.submit("timed-out"), 0.05)
    gate.set()
    assert await first == "A"
    assert await b.submit("b") == "B"
    assert ["timed-out"] not in rec.batches
    await b.aclose()


async def test_pool_gives_one_batcher_per_loop() -> None:
    pool = BatcherPool(Recorder(), max_batch=4)
    assert pool.get() is pool.get()
    assert await pool.get().submit("q") == "Q"
