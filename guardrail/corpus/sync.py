"""Every node serves the same corpora: the store is the source of truth, each node's local
index (guardrail/corpus/index.py) is derived from it.

The store holds a generation (table ``corpus_generation``, one row) that the registry bumps
in the same transaction as every registration or deletion of works and every corpus
change. A node's index records in its manifest the ``(store_id, generation)`` it was last
brought in step with. Each node checks the store's generation every ``sync_s`` seconds
(``GUARDRAIL_CORPUS_SYNC_S``, default 2) in a lifespan task, off the event loop (one
one-row ``SELECT`` in a worker thread; scans never wait for it nor query the store for it);
when it differs from its index's, the node syncs its index from the store
(:meth:`CorpusRegistry.sync_index`: index the works it lacks, tombstone those deleted) and
records the generation it read.

**Bound**: a work registered (or deleted) through any node, or with ``guardrail corpus``,
is found (or no longer found) by every node within ``sync_s`` plus the time to index it on
that node (for the other worker processes of a node sharing its index directory, plus up to
the index's ``refresh_s``, 1 s, to pick up the new manifest). The node that registers it
finds it as soon as the registration returns.

With ``GUARDRAIL_REDIS_URL`` set, a node that changed corpora through its admin API also
publishes on Redis (channel ``<GUARDRAIL_REDIS_NAMESPACE>:corpus-generation``) and the
others check at once instead of at
their next tick: a faster wake-up, best effort (a lost message waits for the poll).

A node whose index records the store's current generation starts without re-indexing
anything; an index built from another database (another ``store_id``) is rebuilt. A node
that cannot reach the store keeps serving its index as it is, and says so in
``state.extras["ready_corpus"]`` (shown by the admin ``/v1/guardrail/readyz``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from guardrail.corpus.models import CorpusGenerationRow
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.corpus.registry import CorpusRegistry
    from guardrail.deps import AppState
    from guardrail.runtime import Runtime

log = logging.getLogger("guardrail.corpus")

Generation = tuple[str, int]  # (store_id, generation)


def bump_generation(s: Session) -> Generation:
    """Advance the store's generation inside the caller's transaction (which commits it with
    the change it stands for); the row lock orders concurrent changes. Returns the new one."""
    now = datetime.now(UTC)
    res = s.execute(
        update(CorpusGenerationRow).where(CorpusGenerationRow.id == 1)
        .values(generation=CorpusGenerationRow.generation + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    if getattr(res, "rowcount", 1) == 0:  # a schema made without the migration's row
        s.add(CorpusGenerationRow(id=1, store_id=uuid.uuid4().hex, generation=1,
                                  updated_at=now))
        s.flush()
    row = s.execute(select(CorpusGenerationRow.store_id, CorpusGenerationRow.generation)
                    .where(CorpusGenerationRow.id == 1)).one()
    return str(row[0]), int(row[1])


def read_generation(engine: Engine) -> Generation | None:
    """The store's ``(store_id, generation)`` (None: no corpus change recorded yet)."""
    with engine.connect() as conn:
        row = conn.execute(select(CorpusGenerationRow.store_id, CorpusGenerationRow.generation)
                           .where(CorpusGenerationRow.id == 1)).first()
    return (str(row[0]), int(row[1])) if row is not None else None


def _iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _error(where: str, exc: BaseException) -> str:
    return f"{where}: {type(exc).__name__}: {exc}"[:300]


class CorpusSync:
    """One node's check of the store's generation, and the sync when it moved. ``status``
    is what the admin readyz shows as ``ready_corpus`` (updated in place)."""

    def __init__(self, runtime: Runtime, interval_s: float) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self.status: dict[str, Any] = {
            "ok": None,  # the last check reached the store and the index is (being) synced
            "in_sync": None,  # the local index records the generation the store has
            "sync_s": interval_s,
            "store_generation": None,  # generation seen in the store at the last check
            "local_generation": None,  # generation the local index records
            "checked_at": None,
            "last_sync_at": None,  # when a sync last changed or confirmed the index
            "last_sync": None,  # {indexed, removed}
            "last_error": None,
            "last_error_at": None,
            "wake": "poll",  # or "redis": subscribed to other nodes' change notices
            "busy": None,  # {"what": "store" | "sync", "since"} while a check runs long
        }
        self._busy: tuple[str, float, str] | None = None  # (what, monotonic, iso) now
        self.idle = threading.Event()  # set while no check runs
        self.idle.set()

    def _failed(self, where: str, exc: BaseException) -> None:
        now = _iso()
        self.status.update(ok=False, checked_at=now, last_error=_error(where, exc),
                           last_error_at=now)
        event(log, logging.WARNING, "corpus_sync_failed", where=where,
              error=type(exc).__name__)

    def tick(self) -> None:
        """Check once; sync if the store moved. Blocking (a worker thread); never raises."""
        self.idle.clear()
        try:
            self._tick()
        finally:
            self._busy = None
            self.status["busy"] = None
            self.idle.set()

    def _doing(self, what: str) -> None:
        self._busy = (what, time.monotonic(), _iso())

    @property
    def running(self) -> bool:
        return self._busy is not None

    def report_stall(self, stall_s: float) -> None:
        """From the event loop: a check running longer than ``stall_s`` is shown; one still
        waiting for the store (e.g. a connection that never answers) is an error."""
        busy = self._busy
        if busy is None or time.monotonic() - busy[1] < stall_s:
            return
        self.status["busy"] = {"what": busy[0], "since": busy[2]}
        if busy[0] == "store":
            self.status.update(ok=False, last_error=f"store: no answer for {stall_s:g} s",
                               last_error_at=_iso())

    def _tick(self) -> None:
        self._doing("store")
        st = self.status
        try:
            store = read_generation(self.runtime.engine)
        except Exception as exc:  # noqa: BLE001 - reported; the index serves on as it is
            self._failed("store", exc)
            return
        st.update(store_generation=store[1] if store else None, checked_at=_iso())
        registry: CorpusRegistry | None = self.runtime.services.get("corpus_registry")
        if registry is None:  # no IP scanner and no corpus call yet: no index open here
            st.update(ok=True, in_sync=None, local_generation=None)
            return
        try:
            registry.index.reload()
            if store is not None and registry.index.generation != store:
                self._doing("sync")
                stats = registry.try_sync_index()  # None: another thread or worker syncs
                if stats is not None:
                    st.update(last_sync_at=_iso(), last_sync=stats)
                    if any(stats.values()):
                        event(log, logging.INFO, "corpus_synced", generation=store[1],
                              indexed=stats["indexed"], removed=stats["removed"])
        except Exception as exc:  # noqa: BLE001 - reported; the index serves on as it is
            self._failed("sync", exc)
        else:
            st["ok"] = True
        local = registry.index.generation
        st.update(local_generation=local[1] if local else None,
                  in_sync=store is None or local == store)


class Wake:
    """Redis pub/sub between nodes: :meth:`notify` after a change, :meth:`wait` for the
    next check (a notice or the interval, whichever first). Without Redis, or while it is
    unreachable, :meth:`wait` just sleeps: the poll is the guarantee."""

    def __init__(self, redis_url: str | None, status: dict[str, Any],
                 namespace: str = "guardrail") -> None:
        self.url = redis_url
        self.channel = f"{namespace}:corpus-generation"
        self.status = status
        self._client: Any = None
        self._pubsub: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis.asyncio

            assert self.url is not None
            self._client = redis.asyncio.Redis.from_url(self.url, socket_connect_timeout=0.5)
        return self._client

    async def notify(self) -> None:
        if not self.url:
            return
        try:
            await asyncio.wait_for(self._redis().publish(self.channel, "changed"), 1.0)
        except Exception as exc:  # noqa: BLE001 - best effort: the others poll anyway
            event(log, logging.WARNING, "corpus_notify_failed", error=type(exc).__name__)

    async def wait(self, interval_s: float) -> None:
        if not self.url:
            await asyncio.sleep(interval_s)
            return
        try:
            if self._pubsub is None:
                self._pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
                await asyncio.wait_for(self._pubsub.subscribe(self.channel), 1.0)
                self.status["wake"] = "redis"
            await self._pubsub.get_message(timeout=interval_s)
        except Exception as exc:  # noqa: BLE001 - back to polling until it is back
            event(log, logging.WARNING, "corpus_wake_failed", error=type(exc).__name__)
            await self._drop()
            await asyncio.sleep(interval_s)

    async def _drop(self) -> None:
        self.status["wake"] = "poll"
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except Exception:  # noqa: BLE001, S110 - a broken connection is gone anyway
                pass

    async def aclose(self) -> None:
        await self._drop()
        if self._client is not None:
            await self._client.aclose()


async def notify(state: AppState) -> None:
    """After a corpus change through this node: wake the other nodes (when Redis is set)."""
    wake: Wake | None = getattr(state, "extras", {}).get("corpus_wake")
    if wake is not None:
        await wake.notify()


async def sync_forever(state: AppState, stall_s: float | None = None) -> None:
    """The lifespan task: :meth:`CorpusSync.tick` every ``settings.corpus_sync_s``, or at
    once when another node says it changed corpora. A check that has not ended after
    ``stall_s`` (default the larger of 10 s and 5 intervals) is reported and left to end
    in its thread; no other starts meanwhile."""
    sync = CorpusSync(state.runtime, state.settings.corpus_sync_s)
    stall_s = stall_s or max(10.0, 5 * sync.interval_s)
    wake = Wake(state.settings.redis_url, sync.status,
                getattr(state.settings, "redis_namespace", "guardrail"))
    state.extras["ready_corpus"] = sync.status
    state.extras["corpus_wake"] = wake
    try:
        while True:
            if not sync.running:
                with anyio.move_on_after(stall_s):
                    await anyio.to_thread.run_sync(sync.tick, abandon_on_cancel=True)
            sync.report_stall(stall_s)
            await wake.wait(sync.interval_s)
    finally:
        state.extras.pop("corpus_wake", None)
        with anyio.CancelScope(shield=True):
            await wake.aclose()
            # a check left to its thread (cancelled at shutdown) still holds a connection:
            # let it end, bounded, before the lifespan disposes of the engine
            await anyio.to_thread.run_sync(sync.idle.wait, stall_s)
