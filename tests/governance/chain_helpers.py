"""Shared by the lifecycle, redress, retention and bundle tests: a store on a fresh SQLite
database (``GUARDRAIL_DATABASE_URL`` pointing at it, for the CLI), drafts and people."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guardrail.db import make_engine, upgrade
from guardrail.incidents.store import IncidentDraft, IncidentStore
from guardrail.people.roles import Principal

REVIEWER = Principal(name="kato", role="reviewer", via="token", person_id=1)
COMPLIANCE = Principal(name="佐藤", role="compliance", via="token", person_id=2)
AUDITOR = Principal(name="aud", role="auditor", via="token", person_id=3)
ADMIN_KEY = Principal(name="admin-key", role="admin", via="admin_key", key_id="key_x")


def draft(i: int, **over: Any) -> IncidentDraft:
    values: dict[str, Any] = dict(
        request_id=f"req_{i}", system_id="chat", policy_name="default", policy_version="v1",
        route="/v1/chat/completions", stage="output", kind="decision", action="block",
        evidence={"findings": [{"scanner": "pii", "kind": "pii", "category": "phone",
                                "score": 0.9, "span": [3, 15],
                                "evidence": {"value": "<PHONE>"}}]},
        scanners=[{"name": "pii", "backend": "presidio"}], scanner="pii", category="phone",
        score=0.9, excerpt=f"call me at <PHONE> ({i})", content_sha256="ab" * 32,
        review_status="open", tenant="acme")
    values.update(over)
    return IncidentDraft(**values)


@dataclass
class Chain:
    url: str
    engine: Any
    store: IncidentStore

    def sql(self, statement: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(statement)

    def scalar(self, statement: str) -> Any:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql(statement).scalar()


@pytest.fixture(name="chain")
def chain_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = f"sqlite:///{tmp_path}/inc.db"
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", url)
    engine = make_engine(url)
    upgrade(url, engine)
    yield Chain(url, engine, IncidentStore(engine))
    engine.dispose()


@pytest.fixture(name="held_response")
def held_response_fixture(make_server: Any) -> Any:
    """A running server with one held response: (server, its incident id)."""
    from tests.people.helpers import make_held

    return make_held(make_server)


@pytest.fixture(name="pg_chain")
def pg_chain_fixture() -> Any:
    """A store in a fresh PostgreSQL schema, in a session time zone that is not UTC (skipped
    where 127.0.0.1:5432 is down, unless GUARDRAIL_REQUIRE_SERVICES=1 as in CI)."""
    from tests.services import pg_schema

    with pg_schema("Asia/Tokyo") as url:
        engine = make_engine(url)
        try:
            upgrade(url, engine)
            yield Chain(url, engine, IncidentStore(engine))
        finally:
            engine.dispose()  # every pooled connection closed: none is left to the collector
