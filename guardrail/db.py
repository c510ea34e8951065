"""Database plumbing shared by the incident store, corpus registry and governance records.

SQLAlchemy 2 (sync engine, used from worker threads) + Alembic migrations. SQLite in WAL
mode is the embedded default; PostgreSQL via ``GUARDRAIL_DATABASE_URL``.

The SQLAlchemy boundary: every engine from :func:`make_engine` turns the driver errors it
sees (connecting, executing, committing) into our :class:`guardrail.errors.StoreError`
subclasses through :func:`guardrail.errors.map_store_exception`, for every store that uses
it; :func:`store_errors` does the same for what SQLAlchemy raises outside the driver (a pool
timeout) at a store's methods. Nothing above the stores sees a SQLAlchemy exception.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from guardrail.errors import map_store_exception

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# The largest integer every supported database takes as a parameter (SQLite's INTEGER,
# PostgreSQL's BIGINT): API ids, offsets and cursors are bounded by it, so a larger value is
# a 400 for the caller, not an OverflowError in the driver.
MAX_SQL_INT = 2**63 - 1


class Base(DeclarativeBase):
    pass


def _translate(ctx: ExceptionContext) -> None:
    """``handle_error`` hook: the driver's error, as ours (SQLAlchemy has rolled back or
    invalidated the connection already). The pool's pre-ping is left alone: SQLAlchemy
    reconnects on its own when it fails."""
    if ctx.is_pre_ping:
        return
    raise map_store_exception(ctx.sqlalchemy_exception or ctx.original_exception)


@contextmanager
def store_errors() -> Iterator[None]:
    """Around a store method: any SQLAlchemy error left (one raised outside the driver, such
    as a pool timeout) becomes a :class:`guardrail.errors.StoreError` too."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise map_store_exception(exc) from exc


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def make_engine(url: str) -> Engine:
    engine = _make_engine(url)
    event.listen(engine, "handle_error", _translate)
    _ENGINES.add(engine)
    return engine


def dispose_all() -> None:
    """Close every pooled connection of every engine made here (a CLI command's end)."""
    for engine in list(_ENGINES):
        engine.dispose()


def _make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"future": True, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # isolation_level=None: we issue BEGIN ourselves (BEGIN IMMEDIATE for the chain)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # PostgreSQL: a server that does not answer fails the connect in 5 s (the pool waits 10 s
    # for a free connection), so an outage is a StoreError quickly, never a hung request
    kwargs.update(pool_size=10, max_overflow=20, pool_timeout=10)
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 5}
    return create_engine(url, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, engine: Engine | None = None) -> None:
    """Bring the schema to the latest migration (idempotent)."""
    from alembic import command

    cfg = alembic_config(url)
    if engine is not None:
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
    else:
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision (None: never migrated)."""
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def require_current(engine: Engine) -> None:
    """For workers that do not migrate: refuse a schema that is not the latest."""
    from guardrail.errors import ConfigError

    have, want = current_revision(engine), head_revision()
    if have != want:
        raise ConfigError(f"the database schema is at revision {have or 'none'}, this "
                          f"guardrail needs {want}: run `guardrail db upgrade` first "
                          "(GUARDRAIL_AUTO_MIGRATE is off)")
