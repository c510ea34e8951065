"""The corpus registry: corpora and works in the database, kept in step with the index.

Adding works is idempotent on the content hash (per corpus): registering the same text again
returns the existing work. Rows are committed first, then indexed (a new segment); a crash in
between leaves ``indexed_at`` empty and :meth:`CorpusRegistry.sync_index` (run at start-up,
in a thread, and whenever the store's generation moves) finishes the job. Deleting
tombstones the works in the index at once.

Every change commits with a bump of the store's generation (guardrail/corpus/sync.py): other
nodes see it move and sync their own index; this node's index records the new generation
at once when it reflected the one before.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import Engine, func, select

from guardrail.corpus.index import CorpusIndex
from guardrail.corpus.models import CorpusRow, WorkRow
from guardrail.corpus.sync import Generation, bump_generation, read_generation
from guardrail.db import session_factory
from guardrail.errors import GuardrailError

log = logging.getLogger("guardrail.corpus")


class CorpusNotFound(GuardrailError, LookupError):
    pass


@dataclass
class WorkInput:
    title: str
    text: str
    source_url: str | None = None
    external_id: str | None = None
    rights_holder: str | None = None
    license: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class AddResult:
    corpus: str
    added: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    skipped_empty: int = 0
    windows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "corpus": self.corpus,
            "added": self.added,
            "duplicates": self.duplicates,
            "skipped_empty": self.skipped_empty,
            "windows": self.windows,
        }


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def corpus_dict(c: CorpusRow, works: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": c.name,
        "rights_holder": c.rights_holder,
        "license": c.license,
        "source_url": c.source_url,
        "description": c.description,
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }
    if works is not None:
        out["works"] = works
    return out


def work_dict(w: WorkRow, corpus: CorpusRow, text: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": w.id,
        "corpus": corpus.name,
        "title": w.title,
        "external_id": w.external_id,
        "source_url": w.source_url or corpus.source_url,
        "rights_holder": w.rights_holder or corpus.rights_holder,
        "license": w.license or corpus.license,
        "content_sha256": w.content_sha256,
        "chars": w.chars,
        "windows": w.windows,
        "registered_at": w.created_at.isoformat(),
        "indexed_at": w.indexed_at.isoformat() if w.indexed_at else None,
        "meta": w.meta,
    }
    if text:
        out["text"] = w.text
    return out


class CorpusRegistry:
    def __init__(self, engine: Engine, index: CorpusIndex) -> None:
        self.engine = engine
        self.index = index
        self._session = session_factory(engine)
        self._meta_cache: dict[int, dict[str, Any]] = {}
        self._meta_epoch = 0  # moves on every invalidation (see work_meta)
        self._meta_lock = threading.Lock()  # orders an invalidation and a refill
        self._sync_thread: threading.Thread | None = None

    # ------------------------------------------------------------------ corpora
    def upsert_corpus(
        self,
        name: str,
        rights_holder: str | None = None,
        license: str | None = None,
        source_url: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Create the corpus, or update the fields given for an existing one."""
        with self._session.begin() as s:
            c = s.scalar(select(CorpusRow).where(CorpusRow.name == name))
            if c is None:
                if not rights_holder or not license:
                    raise ValueError("a new corpus needs a rights holder and a licence")
                now = _now()
                c = CorpusRow(
                    name=name, rights_holder=rights_holder, license=license,
                    source_url=source_url, description=description or "",
                    created_at=now, updated_at=now,
                )
                s.add(c)
            else:
                for key, value in (("rights_holder", rights_holder), ("license", license),
                                   ("source_url", source_url), ("description", description)):
                    if value is not None:
                        setattr(c, key, value)
                c.updated_at = _now()
            s.flush()
            out = corpus_dict(c)
            gen = bump_generation(s)  # other nodes drop their cached metadata
        self._invalidate_meta()
        self._advanced(gen)
        return out

    def list_corpora(self) -> list[dict[str, Any]]:
        with self._session() as s:
            counts = dict(
                s.execute(select(WorkRow.corpus_id, func.count()).group_by(WorkRow.corpus_id)).all()
            )
            rows = s.scalars(select(CorpusRow).order_by(CorpusRow.name)).all()
            return [corpus_dict(c, int(counts.get(c.id, 0))) for c in rows]

    def _corpus(self, s: Any, name: str) -> CorpusRow:
        c = s.scalar(select(CorpusRow).where(CorpusRow.name == name))
        if c is None:
            raise CorpusNotFound(f"no corpus named {name!r}")
        return c  # type: ignore[no-any-return]

    def show(self, name: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        with self._session() as s:
            c = self._corpus(s, name)
            total = s.scalar(select(func.count()).where(WorkRow.corpus_id == c.id)) or 0
            works = s.scalars(
                select(WorkRow).where(WorkRow.corpus_id == c.id).order_by(WorkRow.id)
                .limit(limit).offset(offset)
            ).all()
            return {**corpus_dict(c, int(total)), "data": [work_dict(w, c) for w in works]}

    def delete_corpus(self, name: str) -> int:
        with self._session.begin() as s:
            c = self._corpus(s, name)
            ids = list(s.scalars(select(WorkRow.id).where(WorkRow.corpus_id == c.id)))
            s.query(WorkRow).filter(WorkRow.corpus_id == c.id).delete()
            s.delete(c)
            gen = bump_generation(s)
        with self.index.node_lock():
            self.index.remove_works(ids)
            self._advanced(gen)
        self._invalidate_meta()
        return len(ids)

    # -------------------------------------------------------------------- works
    def add_works(self, name: str, items: list[WorkInput]) -> AddResult:
        """Store and index works (idempotent per content hash). Blocking: call it from a
        worker thread when serving."""
        result = AddResult(corpus=name)
        new: list[tuple[int, str]] = []
        with self._session.begin() as s:
            c = self._corpus(s, name)
            seen: dict[str, int] = {}
            for item in items:
                if not item.text.strip():
                    result.skipped_empty += 1
                    continue
                digest = content_sha256(item.text)
                existing = seen.get(digest) or s.scalar(
                    select(WorkRow.id).where(
                        WorkRow.corpus_id == c.id, WorkRow.content_sha256 == digest
                    )
                )
                if existing:
                    result.duplicates.append(int(existing))
                    continue
                w = WorkRow(
                    corpus_id=c.id, title=item.title[:512], external_id=item.external_id,
                    source_url=item.source_url, rights_holder=item.rights_holder,
                    license=item.license, content_sha256=digest, chars=len(item.text),
                    windows=0, text=item.text, meta=item.meta, created_at=_now(),
                )
                s.add(w)
                s.flush()
                seen[digest] = w.id
                result.added.append(w.id)
                new.append((w.id, item.text))
            gen = bump_generation(s) if new else None
        if gen is not None:
            with self.index.node_lock():
                result.windows = self._index(new)
                self._advanced(gen)
        return result

    def _index(self, works: list[tuple[int, str]], known: bool = True) -> int:
        """Index works (with ``known``, only those the index lacks: a sync may have got
        there first); the caller holds ``index.node_lock()``. Returns their windows."""
        have: set[int] = set()
        if known:
            self.index.reload()
            have = self.index.work_ids()
        todo = [(w, t) for w, t in works if w not in have]
        per = self.index.add_works(todo)
        with self._session.begin() as s:
            now = _now()
            for wid, n in per.items():
                w = s.get(WorkRow, wid)
                if w is not None:
                    w.windows, w.indexed_at = n, now
            done = [w for w, _ in works if w in have]
            if done:
                rows = s.execute(select(WorkRow.id, WorkRow.windows).where(WorkRow.id.in_(done)))
                per.update((int(w), int(n)) for w, n in rows)
        return sum(per.values())

    def _advanced(self, gen: Generation) -> None:
        """After this node's own change (already applied to its index): record ``gen`` if
        the index reflected the generation just before it; else a sync will catch up."""
        self.index.set_generation(gen[0], gen[1], expect=(gen[0], gen[1] - 1))

    def get_work(self, work_id: int, text: bool = False) -> dict[str, Any]:
        with self._session() as s:
            w = s.get(WorkRow, work_id)
            if w is None:
                raise CorpusNotFound(f"no work {work_id}")
            return work_dict(w, s.get(CorpusRow, w.corpus_id), text=text)

    def delete_work(self, work_id: int) -> None:
        with self._session.begin() as s:
            w = s.get(WorkRow, work_id)
            if w is None:
                raise CorpusNotFound(f"no work {work_id}")
            s.delete(w)
            gen = bump_generation(s)
        with self.index.node_lock():
            self.index.remove_works([work_id])
            self._advanced(gen)
        self._invalidate_meta(work_id)

    def _invalidate_meta(self, work_id: int | None = None) -> None:
        """Drop cached evidence fields (one work's, or all) after a change."""
        with self._meta_lock:
            self._meta_epoch += 1
            if work_id is None:
                self._meta_cache.clear()
            else:
                self._meta_cache.pop(work_id, None)

    def work_meta(self, work_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Evidence fields for works (cached; the cache is cleared on metadata changes).

        The answer is built from what this call read, never re-read from the cache: a sync
        thread may clear the cache at any moment (a scan once lost its findings that way).
        A row read before an invalidation is returned but not cached, so a cleared cache is
        never refilled with metadata older than the change that cleared it."""
        out: dict[int, dict[str, Any]] = {}
        for w in work_ids:
            hit = self._meta_cache.get(w)
            if hit is not None:
                out[w] = hit
        missing = [w for w in work_ids if w not in out]
        if missing:
            epoch = self._meta_epoch
            with self._session() as s:
                rows = s.execute(
                    select(WorkRow, CorpusRow).join(CorpusRow, WorkRow.corpus_id == CorpusRow.id)
                    .where(WorkRow.id.in_(missing))
                ).all()
                fresh = {int(w.id): work_dict(w, c) for w, c in rows}
            out.update(fresh)
            with self._meta_lock:
                if epoch == self._meta_epoch:
                    self._meta_cache.update(fresh)
        return {w: out[w] for w in work_ids if w in out}

    # -------------------------------------------------------------------- index
    def sync_index(self) -> dict[str, int]:
        """Make the index match the database: index stored works it lacks (e.g. after the
        index directory was lost, a registration crashed or another node registered) and
        tombstone works it has that the database no longer holds; then record the store's
        generation read before looking. Nothing to do (and no query beyond the generation)
        when the index already records the store's current generation."""
        with self.index.node_lock():
            return self._sync_index()

    def try_sync_index(self) -> dict[str, int] | None:
        """:meth:`sync_index` unless another thread or process of this node is syncing or
        indexing (None: it will record the generation, or the next check syncs)."""
        with self.index.node_lock(blocking=False) as got:
            return self._sync_index() if got else None

    def _sync_index(self, force: bool = False) -> dict[str, int]:
        gen = read_generation(self.engine)  # before reading works: never newer than them
        self.index.reload()
        local = self.index.generation
        if gen is not None and local == gen and not force:
            return {"indexed": 0, "removed": 0}
        if gen is not None and local is not None and local[0] != gen[0]:
            log.warning("corpus index at %s was built from another database: rebuilding it",
                        self.index.directory)
            self.index.clear()
        self._invalidate_meta()  # corpus metadata may have changed too
        with self._session() as s:
            db_ids = set(s.scalars(select(WorkRow.id)))
        have = self.index.work_ids()
        missing = sorted(db_ids - have)
        extra = have - db_ids
        if extra:
            self.index.remove_works(extra)
        indexed = 0
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            with self._session() as s:
                rows = s.execute(select(WorkRow.id, WorkRow.text).where(WorkRow.id.in_(chunk)))
                works = [(int(a), str(b)) for a, b in rows]
            indexed += len(works)
            self._index(works, known=False)
        if gen is not None:
            self.index.set_generation(*gen)
        return {"indexed": indexed, "removed": len(extra)}

    def start_sync(self) -> threading.Thread:
        """Run :meth:`sync_index` once per registry in a background thread."""
        if self._sync_thread is not None:
            return self._sync_thread

        def run() -> None:
            try:
                stats = self.sync_index()
                if any(stats.values()):
                    log.info("corpus index synchronised: %s", stats)
            except Exception:  # noqa: BLE001 - logged; serving goes on with the old index
                log.exception("corpus index synchronisation failed")

        t = threading.Thread(target=run, name="corpus-sync", daemon=True)
        self._sync_thread = t
        t.start()
        return t

    async def aclose(self) -> None:
        """At shutdown (the runtime closes its services before the engine is disposed): wait,
        bounded, for :meth:`start_sync`'s thread, which may still be reading the store."""
        t = self._sync_thread
        if t is not None and t.is_alive():
            await anyio.to_thread.run_sync(t.join, 30.0)

    def reindex(self) -> int:
        """Drop the index and rebuild it from the database."""
        with self.index.node_lock():
            self.index.clear()
            return self._sync_index(force=True)["indexed"]
