"""Fuzzing the API from its own OpenAPI schema (schemathesis over Hypothesis), in process.

Every operation in ``app.openapi()`` gets schema-valid (positive) and schema-violating
(negative) requests, once with no credentials and once with the credential its access rule
asks for (a client key, or an admin's API token). Whatever comes in: no 5xx, and every error
is in the API's own ``{"error": {...}}`` format. The proxy routes read raw bodies, so the
schema is given their OpenAI request bodies here (the app's schema documents none).

Bounded: ``GUARDRAIL_FUZZ_EXAMPLES`` examples per operation, mode and caller (default 25), no
shrinking, and a wall-clock budget per caller (``GUARDRAIL_FUZZ_BUDGET_S``, default 60 s) past
which the remaining operations get one example each. Derandomized, so CI runs the same cases
every time; set ``GUARDRAIL_FUZZ_RANDOM=1`` (and more examples) to search afresh locally.
What the fuzzing found is kept below as plain regression tests.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import os
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi
from starlette.testclient import TestClient

from guardrail import access
from guardrail.app import create_app
from guardrail.people.store import PeopleStore
from guardrail.settings import Settings
from tests.api.formats import error_problem
from tests.conftest import ADMIN_KEY, CLIENT_KEY

EXAMPLES = int(os.environ.get("GUARDRAIL_FUZZ_EXAMPLES", "25"))
BUDGET_S = float(os.environ.get("GUARDRAIL_FUZZ_BUDGET_S", "60"))
RANDOM = os.environ.get("GUARDRAIL_FUZZ_RANDOM") == "1"  # a new search each run (local use)

POLICY = """
name: default
scanners:
  - type: denylist
    name: banned
    category: banned_term
    action: hold
    terms: ["forbidden-codename"]
"""


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


def _json(status: int, obj: Any) -> httpx.Response:
    # ASCII escapes, as JSON encoders send them: a lone surrogate the client sent comes back
    # as the escape ``\ud800``, which is valid JSON
    return httpx.Response(status, content=json.dumps(obj).encode(),
                          headers={"content-type": "application/json"})


class FuzzUpstream(httpx.AsyncBaseTransport):
    """An OpenAI-compatible upstream that answers any request sensibly and small (one choice,
    whatever ``n`` says), echoing the last message, so every 5xx seen is guardrail's own."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/models"):
            return _json(200, {"object": "list", "data": [
                {"id": "fuzz-1", "object": "model", "created": 0, "owned_by": "fuzz"}]})
        if path.endswith("/images/generations") or path.endswith("/images/edits"):
            return _json(200, {"created": 0, "data": [
                {"b64_json": base64.b64encode(PNG).decode()}]})
        raw = await request.aread()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _json(400, {"error": {
                "message": "not a JSON object", "type": "invalid_request_error",
                "param": None, "code": None}})
        chat = path.endswith("/chat/completions")
        text = _echo(body)
        if body.get("stream") is True:
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  content=_sse(text, chat))
        choice: dict[str, Any] = ({"index": 0, "message": {"role": "assistant", "content": text},
                                   "finish_reason": "stop"} if chat else
                                  {"index": 0, "text": text, "finish_reason": "stop"})
        return _json(200, {
            "id": "fuzz", "object": "chat.completion" if chat else "text_completion",
            "created": 0, "model": "fuzz-1", "choices": [choice]})


def _echo(body: dict[str, Any]) -> str:
    msgs = body.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[-1], dict):
        content = msgs[-1].get("content")
        return content if isinstance(content, str) else "hello"
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else "hello"


def _sse(text: str, chat: bool) -> bytes:
    out = []
    for i in range(0, max(len(text), 1), 5):
        piece = text[i:i + 5]
        c = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
             else {"index": 0, "text": piece, "finish_reason": None})
        out.append(f"data: {json.dumps({'id': 'fuzz', 'choices': [c]})}\n\n")
    end = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
           else {"index": 0, "text": "", "finish_reason": "stop"})
    out.append(f"data: {json.dumps({'id': 'fuzz', 'choices': [end]})}\n\ndata: [DONE]\n\n")
    return "".join(out).encode()


# --- request bodies the proxy routes read themselves (OpenAI's, as far as guardrail cares) ----
_TEXT = {"type": "string", "maxLength": 200}
_CONTENT = {"anyOf": [_TEXT, {"type": "null"}, {"type": "array", "maxItems": 3, "items": {
    "type": "object", "properties": {"type": {"enum": ["text", "image_url"]}, "text": _TEXT}}}]}
_COMMON = {"model": {"type": "string", "maxLength": 40}, "stream": {"type": "boolean"},
           "n": {"type": "integer", "minimum": 1, "maximum": 3},
           "max_tokens": {"type": "integer"}, "temperature": {"type": "number"}}
CHAT = {"type": "object", "required": ["model", "messages"], "properties": {
    **_COMMON, "messages": {"type": "array", "minItems": 1, "maxItems": 4, "items": {
        "type": "object", "required": ["role"], "properties": {
            "role": {"enum": ["system", "user", "assistant", "tool"]}, "content": _CONTENT}}}}}
COMPLETION = {"type": "object", "required": ["model", "prompt"], "properties": {
    **_COMMON, "prompt": {"anyOf": [_TEXT, {"type": "array", "maxItems": 3, "items": _TEXT}]}}}
IMAGE = {"type": "object", "required": ["prompt"], "properties": {
    "prompt": _TEXT, "model": {"type": "string", "maxLength": 40},
    "n": {"type": "integer", "minimum": 1, "maximum": 2},
    "response_format": {"enum": ["b64_json", "url"]}}}
EDIT = {"type": "object", "required": ["prompt", "image"], "properties": {
    "prompt": _TEXT, "image": {"type": "string", "format": "binary"},
    "response_format": {"enum": ["b64_json", "url"]}}}
VERIFY = {"type": "object", "properties": {"image": {"type": "string", "maxLength": 400}}}

RAW_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/chat/completions"): {"application/json": {"schema": CHAT}},
    ("POST", "/v1/completions"): {"application/json": {"schema": COMPLETION}},
    ("POST", "/v1/images/generations"): {"application/json": {"schema": IMAGE}},
    ("POST", "/v1/images/edits"): {"multipart/form-data": {"schema": EDIT}},
    ("POST", "/v1/guardrail/verify"): {
        "application/json": {"schema": VERIFY},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


def fuzz_schema(app: Any) -> dict[str, Any]:
    raw = copy.deepcopy(app.openapi())
    for (method, path), content in RAW_BODIES.items():
        op = raw["paths"][path][method.lower()]
        assert "requestBody" not in op, f"{method} {path} documents its body now: drop ours"
        op["requestBody"] = {"required": True, "content": content}
    return raw


@pytest.fixture
def fuzz_app(tmp_path) -> tuple[Any, dict[str, str]]:
    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "default.yaml").write_text(POLICY, encoding="utf-8")
    settings_ = Settings(database_url=f"sqlite:///{tmp_path}/fuzz.db", policy_dir=pdir,
                         api_keys=[CLIENT_KEY], admin_key=ADMIN_KEY, upstream_url=None)
    app = create_app(settings_, transport=FuzzUpstream())
    store = PeopleStore(app.state.guardrail.store.engine)
    store.add("fuzz-admin", "admin")
    token = store.new_token("fuzz-admin")[1]
    return app, {"client": CLIENT_KEY, "api": token}


def _check(case: Any, response: Any, rule: access.Access, authed: bool) -> None:
    status = response.status_code
    problem = None
    if status >= 500:
        problem = f"server error: {response.content[:300]!r}"
    elif status >= 400:
        ctype = (response.headers.get("content-type") or [""])[0]
        found = error_problem(status, ctype, response.content)
        problem = f"error not in the API's format: {found}" if found else None
    elif not authed and rule.kind != "public" and status < 300:
        problem = "served without credentials"
    if problem:
        raise AssertionError(f"{case.method} {case.formatted_path} -> HTTP {status}: {problem}"
                             f"\n    {case.as_curl_command()[:600]}")


def _run(op: Any, mode: GenerationMode, app: Any, headers: dict[str, str],
         rule: access.Access, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=not RANDOM,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(app=app, headers=headers)
        except Exception as exc:
            raise AssertionError(f"{case.method} {case.formatted_path}: the app raised "
                                 f"{type(exc).__name__}: {exc}".splitlines()[0]
                                 + f"\n    {case.as_curl_command(headers=headers)[:600]}"
                                 ) from exc
        _check(case, response, rule, bool(headers))

    run()


@pytest.mark.slow
@pytest.mark.parametrize("authed", [False, True], ids=["anonymous", "authenticated"])
def test_fuzz_api(fuzz_app, authed):
    app, creds = fuzz_app
    schema = schemathesis.openapi.from_dict(fuzz_schema(app))
    try:
        failures, ran = _fuzz(schema, app, creds, authed)
    finally:
        asgi.shutdown_lifespans()  # schemathesis started the app's lifespan: end it
    assert ran >= 30, ran  # the operations were really fuzzed
    assert not failures, f"{len(failures)} operations failed:\n" + "\n".join(failures)


def _fuzz(schema: Any, app: Any, creds: dict[str, str], authed: bool) -> tuple[list[str], int]:
    started = time.monotonic()
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        op = result.ok()
        rule = access.rule_for(op.method, op.path)
        assert rule is not None, f"{op.method.upper()} {op.path} has no access rule"
        bearer = creds.get(rule.kind) if authed else None
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        for mode in GenerationMode:
            examples = EXAMPLES if time.monotonic() - started < BUDGET_S else 1
            try:
                _run(op, mode, app, headers, rule, examples)
            except Unsatisfiable:
                continue  # no way to violate a schema without parameters
            except AssertionError as exc:  # a check failed, or the app raised
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): "
                                + "\n".join(str(exc).splitlines()[:2]))
            ran += 1
    return failures, ran


# --- what the fuzzing found, kept as plain regression tests -----------------------------------
DEEP = b"[" * 100_000  # RecursionError in json.loads: answered 500
LONE_SURROGATE = [  # valid JSON, but no Unicode text: answered 500 once an incident was written
    b'{"model": "m", "messages": [{"role": "user", "content": "\\ud800 forbidden-codename"}]}',
    b'{"model": "m", "prompt": "\\udfff forbidden-codename", "stream": true}',
    '{"model": "m", "prompt": "\ud800 x"}'.encode("utf-8", "surrogatepass"),  # as raw bytes
    b'{"prompt": "\\ud800", "image": "\\ud800"}',
]


@pytest.mark.parametrize(("method", "path"), sorted(RAW_BODIES))
@pytest.mark.parametrize("body", [DEEP, *LONE_SURROGATE, b"{", b"\xff\xfe"],
                         ids=["deep", "escape", "escape-stream", "surrogate-bytes", "image",
                              "truncated", "not-utf8"])
def test_malformed_json_bodies_are_400(fuzz_app, method, path, body):
    app, creds = fuzz_app
    with TestClient(app) as c:
        r = c.request(method, path, content=body, headers={
            "Authorization": f"Bearer {creds['client']}", "content-type": "application/json"})
    assert error_problem(r.status_code, r.headers.get("content-type"), r.content) is None
    if path == "/v1/images/edits":  # multipart only: refused before any parsing
        assert r.status_code == 400
    else:
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_json"), r.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/guardrail/incidents?cursor=9223372036854775808"),
    ("GET", "/v1/guardrail/incidents?cursor=-1"),
    ("GET", "/v1/guardrail/corpora/c?offset=9223372036854775808"),
    ("GET", "/v1/guardrail/corpora/c/works/9223372036854775808"),
    ("DELETE", "/v1/guardrail/corpora/c/works/9223372036854775808"),
])
def test_integers_past_the_database_range_are_400(fuzz_app, method, path):
    """SQLite raised OverflowError (500) for ids, offsets and cursors past 2**63 - 1."""
    app, creds = fuzz_app
    with TestClient(app) as c:
        r = c.request(method, path, headers={"Authorization": f"Bearer {creds['api']}"})
    assert r.status_code == 400, r.text
    assert error_problem(r.status_code, r.headers.get("content-type"), r.content) is None
    assert r.json()["error"]["param"] in ("cursor", "offset", "work_id")
