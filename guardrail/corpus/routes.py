"""Admin API for corpora: ``/v1/guardrail/corpora``.

Registration runs in a worker thread (never on the event loop); the index publishes the new
segment atomically, so serving goes on with the previous index until it is ready. Every
change wakes the other nodes (guardrail/corpus/sync.py), which otherwise see it at their
next check.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from guardrail.corpus.registry import CorpusNotFound, CorpusRegistry, WorkInput
from guardrail.corpus.service import get_registry
from guardrail.corpus.sync import notify
from guardrail.db import MAX_SQL_INT
from guardrail.deps import AdminDep, State
from guardrail.errors import BadRequestError, NotFoundError

router = APIRouter(prefix="/v1/guardrail/corpora", tags=["corpora"])

NAME = r"^[A-Za-z0-9_.:-]{1,128}$"
WorkId = Annotated[int, Path(ge=1, le=MAX_SQL_INT)]


class CorpusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME)
    rights_holder: str = Field(min_length=1, max_length=256)
    license: str = Field(min_length=1, max_length=256)
    source_url: str | None = None
    description: str = ""


class CorpusPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rights_holder: str | None = Field(None, min_length=1, max_length=256)
    license: str | None = Field(None, min_length=1, max_length=256)
    source_url: str | None = None
    description: str | None = None


class WorkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    title: str = "untitled"
    id: str | None = Field(None, description="Your identifier for the work.")
    source_url: str | None = None
    rights_holder: str | None = None
    license: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class WorksIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    works: list[WorkIn] = Field(min_length=1, max_length=10_000)


def _reg(state: Any) -> CorpusRegistry:
    return get_registry(state.runtime)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except CorpusNotFound as exc:
        raise NotFoundError(str(exc)) from exc
    except ValueError as exc:
        raise BadRequestError(str(exc)) from exc


@router.get("")
async def list_corpora(state: State, _admin: AdminDep) -> dict[str, Any]:
    reg = _reg(state)
    rows = await _call(reg.list_corpora)
    return {"object": "list", "data": rows, "index": reg.index.stats()}


@router.post("", status_code=201)
async def create_corpus(body: CorpusIn, state: State, _admin: AdminDep) -> dict[str, Any]:
    """Create a corpus (or update the metadata of an existing one with the same name)."""
    reg = _reg(state)
    out = await _call(reg.upsert_corpus, body.name, body.rights_holder, body.license,
                      body.source_url, body.description)
    await notify(state)
    return out  # type: ignore[no-any-return]


@router.get("/{name}")
async def show_corpus(
    name: str, state: State, _admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> dict[str, Any]:
    return await _call(_reg(state).show, name, limit, offset)  # type: ignore[no-any-return]


@router.patch("/{name}")
async def update_corpus(
    name: str, body: CorpusPatch, state: State, _admin: AdminDep
) -> dict[str, Any]:
    reg = _reg(state)
    await _call(reg.show, name, 1)  # 404 for an unknown corpus (PATCH never creates)
    out = await _call(reg.upsert_corpus, name, body.rights_holder, body.license,
                      body.source_url, body.description)
    await notify(state)
    return out  # type: ignore[no-any-return]


@router.delete("/{name}")
async def delete_corpus(name: str, state: State, _admin: AdminDep) -> dict[str, Any]:
    n = await _call(_reg(state).delete_corpus, name)
    await notify(state)
    return {"deleted": True, "name": name, "works": n}


@router.post("/{name}/works", status_code=201)
async def add_works(name: str, body: WorksIn, state: State, _admin: AdminDep) -> dict[str, Any]:
    """Register works (idempotent on content: a known text returns its existing id)."""
    items = [
        WorkInput(title=w.title, text=w.text, source_url=w.source_url, external_id=w.id,
                  rights_holder=w.rights_holder, license=w.license, meta=w.meta)
        for w in body.works
    ]
    res = await _call(_reg(state).add_works, name, items)
    if res.added:
        await notify(state)
    return res.as_dict()  # type: ignore[no-any-return]


@router.get("/{name}/works/{work_id}")
async def get_work(
    name: str, work_id: WorkId, state: State, _admin: AdminDep, text: bool = False
) -> dict[str, Any]:
    w = await _call(_reg(state).get_work, work_id, text)
    if w["corpus"] != name:
        raise NotFoundError(f"no work {work_id} in corpus {name!r}")
    return w  # type: ignore[no-any-return]


@router.delete("/{name}/works/{work_id}")
async def delete_work(name: str, work_id: WorkId, state: State, _admin: AdminDep) -> dict[str, Any]:
    reg = _reg(state)
    w = await _call(reg.get_work, work_id)
    if w["corpus"] != name:
        raise NotFoundError(f"no work {work_id} in corpus {name!r}")
    await _call(reg.delete_work, work_id)
    await notify(state)
    return {"deleted": True, "id": work_id}
