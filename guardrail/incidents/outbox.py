"""A durable local outbox for incident records while the store is unreachable.

A policy with ``on_store_error: fail_open`` keeps serving when the database is down: the
incident drafts of each response are appended to a local JSON-lines file and fsynced *before*
the response they concern is released (the record is durable on this machine, if not yet in
the chain), and a background task replays the file into the store, in order, once it answers
again. Each replayed draft keeps its id and the time it happened (``occurred_at``); the chain
seals it when it is replayed. ``fail_closed`` (the default) answers 503 instead and releases
nothing.

One file per process (``<outbox_dir>/outbox-<pid>.jsonl``), so workers never interleave
writes; a process replays every file in the directory whose writer is gone, its own included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.errors import StoreError
from guardrail.incidents.store import IncidentDraft, IncidentStore
from guardrail.logs import event

if TYPE_CHECKING:
    from guardrail.deps import AppState

log = logging.getLogger("guardrail.outbox")


def outbox_dir(database_url: str) -> Path:
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        return Path(database_url.removeprefix("sqlite:///")).parent / ".guardrail" / "outbox"
    return Path(".guardrail") / "outbox"


async def replay_forever(state: AppState) -> None:
    """The lifespan's task: replay the outbox every ``outbox_replay_s`` while it has records."""
    import asyncio

    import anyio

    outbox: Outbox = state.extras["outbox"]
    while True:
        await asyncio.sleep(state.settings.outbox_replay_s)
        try:
            pending = await anyio.to_thread.run_sync(outbox.pending)
            state.metrics.outbox_pending.set(pending)
            if pending:
                await anyio.to_thread.run_sync(outbox.replay, state.store)
                state.metrics.outbox_pending.set(await anyio.to_thread.run_sync(outbox.pending))
        except Exception as exc:  # noqa: BLE001 - try again next round
            event(log, logging.WARNING, "outbox_replay_failed", error=type(exc).__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Outbox:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / f"outbox-{os.getpid()}.jsonl"
        self._lock = threading.Lock()

    def put(self, drafts: list[IncidentDraft]) -> list[str]:
        """Append and fsync (called from a worker thread). Returns the draft ids."""
        now = datetime.now(UTC)
        lines = "".join(json.dumps({**dataclasses.asdict(d),
                                    "occurred_at": (d.occurred_at or now).isoformat()},
                                   ensure_ascii=False, default=str) + "\n" for d in drafts)
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, lines.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return [d.id for d in drafts]

    def pending(self) -> int:
        n = 0
        for f in self._files():
            with f.open(encoding="utf-8") as fh:
                n += sum(1 for line in fh if line.strip())
        return n

    def _files(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        out = []
        for f in sorted(self.dir.glob("outbox-*.jsonl")):
            pid = f.stem.removeprefix("outbox-")
            if f == self.path or not (pid.isdigit() and _alive(int(pid))):
                out.append(f)
        return out

    def replay(self, store: IncidentStore) -> int:
        """Append every pending draft to the store, oldest first; a file is removed once all
        its drafts are in. Returns how many were replayed (0 while the store is still down:
        nothing is lost, the next round tries again)."""
        n = 0
        for f in self._files():
            with self._lock:
                rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()
                        if line.strip()]
                if not rows:
                    f.unlink(missing_ok=True)
                    continue
                drafts = [_draft(r) for r in rows]
                try:
                    # already-appended ones (a crash mid-replay) are skipped
                    todo = [d for d in drafts if store.get(d.id) is None]
                    store.append(todo)
                except StoreError:
                    return n
                f.unlink(missing_ok=True)
                n += len(todo)
                event(log, logging.WARNING, "outbox_replayed", file=f.name, records=len(todo))
        return n


def _draft(row: dict[str, Any]) -> IncidentDraft:
    fields = {f.name for f in dataclasses.fields(IncidentDraft)}
    d = IncidentDraft(**{k: v for k, v in row.items() if k in fields})
    if isinstance(d.occurred_at, str):
        d.occurred_at = datetime.fromisoformat(d.occurred_at)
    return d
