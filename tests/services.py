"""PostgreSQL and Redis for the tests that need them (127.0.0.1:5432 database ``test``, trust
auth; 127.0.0.1:6379), as CI and this project's machines run them.

Unreachable: the test is skipped with the reason, unless ``GUARDRAIL_REQUIRE_SERVICES=1``
(set in ``.ci/run``), where it fails. ``GUARDRAIL_TEST_STORE=postgres`` runs every test that
starts a server with ``make_server`` on PostgreSQL (a fresh schema per server) and Redis
instead of SQLite and in-process state: the same tests, not copies.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"


def unavailable(what: str, exc: BaseException) -> NoReturn:
    reason = f"{what} unreachable ({type(exc).__name__}: {str(exc)[:200]})"
    if os.environ.get("GUARDRAIL_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + "; GUARDRAIL_REQUIRE_SERVICES=1 requires it")
    pytest.skip(reason + "; set GUARDRAIL_REQUIRE_SERVICES=1 to fail instead")


def store_kind() -> str:
    return os.environ.get("GUARDRAIL_TEST_STORE", "sqlite")


@contextmanager
def pg_schema(timezone: str | None = None) -> Iterator[str]:
    """A database URL on a fresh PostgreSQL schema (dropped afterwards); ``timezone`` sets
    the session time zone (e.g. Asia/Tokyo: timestamps must still compare in UTC)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    schema = "t_" + uuid.uuid4().hex[:8]
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach it
        admin.dispose()
        unavailable("PostgreSQL at 127.0.0.1:5432", exc)
    opts = f"-csearch_path%3D{schema}" + (f"%20-ctimezone%3D{timezone}" if timezone else "")
    try:
        yield f"{PG_ADMIN}?options={opts}"
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def require_redis() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis at 127.0.0.1:6379", exc)
    finally:
        client.close()
    return REDIS_URL
