"""One error boundary (issue 12, finding 7): httpx and SQLAlchemy errors are ours at one place
each, every exception class is under GuardrailError, and a store outage is a 503 in OpenAI's
error format that never lets the intervention it concerns out without its incident."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import sqlite3
from pathlib import Path

import httpx
import pytest

import guardrail
from guardrail import errors
from guardrail.db import make_engine, upgrade
from guardrail.errors import GuardrailError, StoreError
from guardrail.incidents.store import IncidentStore
from tests.mocks.stores import cut_store

SECRET = "sk-abcdefghijklmnopqrstuvwx"
POLICY = """
name: default
scanners:
  - type: denylist
    name: secrets
    category: credential
    action: redact
    patterns: ['sk-[a-z0-9]{20,}']
"""
PACKAGE = Path(guardrail.__file__).parent


def _chat(text: str, **extra: object) -> dict:
    return {"model": "echo", "messages": [{"role": "user", "content": text}], **extra}


def _post(server, body: dict) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {server.client_key}"})


def test_store_outage_is_503_in_openai_format_and_the_redaction_is_withheld(
        make_server, monkeypatch):
    server = make_server(POLICY)
    cut_store(server.store.engine, monkeypatch)
    resp = _post(server, _chat(f"my key is {SECRET}"))
    assert resp.status_code == 503, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    assert (err["type"], err["code"]) == ("server_error", "store_unavailable")
    assert SECRET not in resp.text and "sqlite" not in resp.text.lower()
    assert resp.headers["retry-after"]


def test_store_outage_withholds_a_stream_with_an_openai_error_event(make_server, monkeypatch):
    server = make_server(POLICY)
    cut_store(server.store.engine, monkeypatch)
    with httpx.stream("POST", server.base_url + "/chat/completions", timeout=30,
                      json=_chat(f"{SECRET} and then a longer tail of ordinary words",
                                 stream=True),
                      headers={"Authorization": f"Bearer {server.client_key}"}) as resp:
        body = resp.read().decode()
    events = [json.loads(line[5:]) for line in body.splitlines()
              if line.startswith("data:") and line[5:].strip() != "[DONE]"]
    assert events[-1]["error"]["code"] == "store_unavailable"
    assert "sk-" not in body  # nothing of the redacted text, nor after it, was released


def test_allowed_responses_need_no_store(make_server, monkeypatch):
    """Fail closed where an incident is due, not everywhere: nothing to record, no outage."""
    server = make_server(POLICY)
    cut_store(server.store.engine, monkeypatch)
    resp = _post(server, _chat("nothing to see"))
    assert resp.status_code == 200 and resp.json()["guardrail"]["decision"] == "allow"


def test_a_stored_client_key_during_an_outage_is_503_not_500(make_server, monkeypatch):
    server = make_server(POLICY)
    cut_store(server.store.engine, monkeypatch)
    resp = httpx.post(server.base_url + "/chat/completions", json=_chat("hi"), timeout=30,
                      headers={"Authorization": "Bearer sk-a-key-only-the-store-could-know"})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "store_unavailable"


def test_every_engine_maps_driver_errors_to_ours(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/no/such/dir/g.db")
    with pytest.raises(errors.StoreUnavailableError) as err:
        IncidentStore(engine).count()
    assert isinstance(err.value.__cause__, sqlite3.OperationalError)
    url = f"sqlite:///{tmp_path}/g.db"
    engine = make_engine(url)
    upgrade(url, engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE incidents")
    with pytest.raises(errors.StoreUnavailableError, match="no such table"):
        IncidentStore(engine).list()
    with pytest.raises(errors.StoreConflictError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO incident_chain_head (id, last_seq, last_hash, count) "
                             "VALUES (1, 0, 'x', 0), (1, 0, 'x', 0)")
    engine.dispose()


@pytest.mark.parametrize(("exc", "kind"), [
    pytest.param("OperationalError", "StoreUnavailableError", id="operational"),
    pytest.param("InterfaceError", "StoreUnavailableError", id="interface"),
    pytest.param("IntegrityError", "StoreConflictError", id="integrity"),
    pytest.param("ProgrammingError", "StoreError", id="other"),
])
def test_map_store_exception(exc, kind):
    from sqlalchemy import exc as sa

    mapped = errors.map_store_exception(getattr(sa, exc)("SELECT 1", {}, Exception("x")))
    assert type(mapped).__name__ == kind and isinstance(mapped, StoreError)


# -- the tree and the boundaries, read from the code ----------------------------------------

def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(PACKAGE)], "guardrail.")
            if ".migrations" not in m.name]


def test_every_exception_class_is_under_guardrail_error():
    outside = []
    for name in _modules():
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == name and issubclass(cls, BaseException)
                    and not issubclass(cls, GuardrailError)):
                outside.append(f"{name}.{cls.__qualname__}")
    assert outside == []


def _httpx_names(node: ast.expr | None) -> list[str]:
    """httpx exception classes an ``except`` clause names (``httpx.X`` attributes)."""
    if node is None:
        return []
    parts = node.elts if isinstance(node, ast.Tuple) else [node]
    return [p.attr for p in parts if isinstance(p, ast.Attribute)
            and isinstance(p.value, ast.Name) and p.value.id == "httpx"
            and isinstance(getattr(httpx, p.attr, None), type)
            and issubclass(getattr(httpx, p.attr), httpx.HTTPError | httpx.StreamError)]


def test_httpx_errors_are_caught_in_one_place():
    sites = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and _httpx_names(node.type):
                sites.append(f"{rel}:{node.lineno}")
    assert sites and all(s.startswith("guardrail/errors.py:") for s in sites), sites
