"""Micro-batching of concurrent model calls, off the event loop.

Concurrent requests each :meth:`MicroBatcher.submit` their items (text chunks). One worker
task takes the first waiting item, collects more until ``max_batch`` items or ``max_wait_ms``
have passed, and runs the (blocking) model function on the whole batch in a thread, so the
event loop keeps serving. The queue is bounded (``max_queue`` items): when it is full, callers
wait for room (back-pressure), and the runner's per-scanner timeout turns a long wait into the
policy's fail-open/fail-closed outcome. ``reject_when_full=True`` fails fast with
:class:`QueueFullError` instead.

A batcher belongs to one event loop; :class:`BatcherPool` hands out one per running loop (the
test client, uvicorn and ``guardrail scan`` each run their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from guardrail.errors import ScannerRuntimeError

T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(ScannerRuntimeError):
    """The batch queue is full and the batcher is set to reject rather than wait."""


class BatcherClosedError(ScannerRuntimeError):
    """The batcher was closed (shutting down): queued and in-flight items get this."""


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 16,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        reject_when_full: bool = False,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.reject_when_full = reject_when_full
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue(max_queue)
        self._executor = executor
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise BatcherClosedError("harm batcher is closed")
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        futs: list[asyncio.Future[R]] = []
        for item in items:
            fut: asyncio.Future[R] = loop.create_future()
            if self.reject_when_full:
                try:
                    self._queue.put_nowait((item, fut))
                except asyncio.QueueFull:
                    for f in futs:
                        f.cancel()
                    raise QueueFullError(
                        f"harm batch queue full ({self._queue.maxsize} items)"
                    ) from None
            else:
                await self._queue.put((item, fut))  # back-pressure: waits for room
            futs.append(fut)
        try:
            return list(await asyncio.gather(*futs))
        except BaseException:
            for f in futs:
                f.cancel()  # a timed-out caller's items are skipped, not computed
            raise

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = time.perf_counter() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            try:
                results = await loop.run_in_executor(
                    self._executor, self.fn, [item for item, _ in live]
                )
            except asyncio.CancelledError:  # closed mid-batch: no waiter is left hanging
                _refuse(live)
                raise
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.batches += 1
            self.items += len(live)
            for (_, fut), res in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(res)

    async def aclose(self) -> None:
        """Stop the worker; every item queued or in the batch being computed fails with
        :class:`BatcherClosedError` (a waiting scan records a failure, never hangs)."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        left = []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        _refuse(left)


def _refuse(items: list[tuple[Any, asyncio.Future[Any]]]) -> None:
    for _, fut in items:
        if not fut.done():
            fut.set_exception(BatcherClosedError("harm batcher is closed"))


class BatcherPool(Generic[T, R]):
    """One :class:`MicroBatcher` per event loop, all sharing one model function and one
    single-thread executor (the model is not re-entrant, and one thread per model keeps
    BLAS/OpenMP threads from oversubscribing the cores)."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], **kw: Any) -> None:
        self.fn = fn
        self.kw = kw
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harm-model")
        self._by_loop: dict[int, tuple[asyncio.AbstractEventLoop, MicroBatcher[T, R]]] = {}
        self._lock = threading.Lock()

    async def aclose(self) -> None:
        """Close this loop's batcher (the others' loops have ended, their workers with them)
        and the model thread (it ends after the batch it is computing)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            mine = [b for owner, b in self._by_loop.values() if owner is loop]
            self._by_loop.clear()
        for batcher in mine:
            await batcher.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def get(self) -> MicroBatcher[T, R]:
        loop = asyncio.get_running_loop()
        with self._lock:
            hit = self._by_loop.get(id(loop))
            if hit is None or hit[0] is not loop:
                self._by_loop = {k: v for k, v in self._by_loop.items() if not v[0].is_closed()}
                hit = (loop, MicroBatcher(self.fn, executor=self._executor, **self.kw))
                self._by_loop[id(loop)] = hit
            return hit[1]
