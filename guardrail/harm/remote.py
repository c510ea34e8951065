"""What the remote harm backends share: the async contract, the HTTP client and its bounds.

A remote backend (``openai-moderation``, ``llm-judge``) scores over HTTP. It implements
:class:`AsyncHarmBackend` (``apredict``, awaited on the event loop), so the scanner calls it
directly: no model thread, no micro-batcher (the backend batches per request itself).

Bounds: every request has an httpx connect timeout and an overall deadline
(``request_timeout_ms``, enforced with :func:`asyncio.timeout` as well, so a server that trickles
bytes cannot hold a scan); the policy's scanner timeout still applies around the whole scan.
Failures become :class:`guardrail.errors.RemoteBackendError` (or its timeout / answer
subclasses), which the runner records as a scanner failure under the scanner's ``on_error``;
nothing unreadable is ever taken as "safe".

The API key is read from the environment variable the policy names (``api_key_env``) at
``load()``, kept on the backend only, and scrubbed from any error text. ``load()`` needs no
network; ``probe: true`` makes it send one small request and fail start-up if the answer is not
usable.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import httpx

from guardrail.errors import (
    HttpFailure,
    RemoteAnswerError,
    RemoteBackendError,
    RemoteBackendTimeoutError,
    httpx_errors,
    remote_failure,
)

T = TypeVar("T")


@runtime_checkable
class AsyncHarmBackend(Protocol):
    """A harm backend that is awaited on the event loop (network, not CPU)."""

    name: str

    async def apredict(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text, category -> score in [0, 1]. Raises RemoteBackendError on any failure."""
        ...


async def gather_all(aws: Sequence[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the other requests are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        raise


def endpoint_url(url: str, path: str) -> str:
    """The full endpoint for a base URL: ``https://h/v1`` -> ``https://h/v1/<path>``,
    ``https://h`` -> ``https://h/v1/<path>``; a URL already ending in ``<path>`` is kept."""
    base = url.rstrip("/")
    if base.endswith("/" + path):
        return base
    if base.endswith("/v1"):
        return f"{base}/{path}"
    return f"{base}/v1/{path}"


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a backend URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"url must be http(s)://host[:port][/path], got {url!r}"
    if parts.username or parts.password:
        return "url must not carry credentials: name the key's environment variable in api_key_env"
    if parts.query or parts.fragment:
        return "url must not have a query or fragment"
    return None


class _LoopClients:
    """One ``httpx.AsyncClient`` per event loop: a client's pooled connections belong to the
    loop that opened them (the test client, uvicorn and ``guardrail scan`` each run their own)."""

    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._by_loop: dict[int, tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]] = {}
        self._lock = threading.Lock()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._lock:
            hit = self._by_loop.get(id(loop))
            if hit is None or hit[0] is not loop:
                self._by_loop = {k: v for k, v in self._by_loop.items() if not v[0].is_closed()}
                hit = (loop, self._factory())
                self._by_loop[id(loop)] = hit
            return hit[1]

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            hit = self._by_loop.pop(id(loop), None)
        if hit is not None:
            await hit[1].aclose()


class RemoteBackend:
    """HTTP plumbing shared by the remote backends; subclasses build and read the bodies."""

    name = "remote"
    path = ""  # endpoint path under /v1

    def __init__(self, url: str, model: str | None = None, *, api_key_env: str | None = None,
                 connect_timeout_ms: float = 2000.0, request_timeout_ms: float = 10000.0,
                 max_connections: int = 16, probe: bool = False,
                 label_map: dict[str, str | None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = endpoint_url(url, self.path)
        parts = urlsplit(self.url)
        self.host = parts.netloc
        self.endpoint = parts.path
        self.model = model
        self.version: str | None = None
        self.api_key_env = api_key_env
        self.label_map = label_map or {}
        self.connect_s = connect_timeout_ms / 1000.0
        self.request_s = request_timeout_ms / 1000.0
        self.max_connections = max_connections
        self.probe = probe
        self._transport = transport
        self._key: str | None = None
        self._clients = _LoopClients(self._new_client)

    # -- contract shared with the local backends -------------------------------------------
    def missing(self) -> str | None:
        problem = check_url(self.url)
        if problem:
            return problem
        if self.api_key_env and not os.environ.get(self.api_key_env):
            return f"environment variable {self.api_key_env} (api_key_env) is not set"
        if not self.api_key_env and self.host.endswith("api.openai.com"):
            return "api.openai.com needs a key: set api_key_env to the variable that holds it"
        return None

    def load(self) -> None:
        """No network unless ``probe``; ``BackendLoadError`` when the probe fails."""
        from guardrail.harm.backends import BackendLoadError

        self._key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if not self.probe:
            return
        try:
            with (httpx_errors(self._failure),
                  httpx.Client(timeout=self._timeout(), follow_redirects=False) as client):
                resp = client.post(self.url, json=self.body(self.probe_texts()),
                                   headers=self._headers())
                self.read(self._json(resp), self.probe_texts())
        except RemoteBackendError as err:
            raise BackendLoadError(f"probe failed: {self._scrub(str(err))}") from None
        except Exception as exc:  # noqa: BLE001 - any probe failure is a load failure
            raise BackendLoadError(f"probe failed: {self.name} at {self.host}: "
                                   f"answer unreadable ({type(exc).__name__})") from None

    def _failure(self, f: HttpFailure) -> RemoteBackendError:
        return remote_failure(self.name, self.host, self.connect_s, self.request_s)(f)

    def details(self) -> dict[str, Any]:
        return {"url_host": self.host, "endpoint": self.endpoint, "model": self.model,
                "api_key_env": self.api_key_env, "connect_timeout_ms": self.connect_s * 1000,
                "request_timeout_ms": self.request_s * 1000, "probe": self.probe}

    async def aclose(self) -> None:
        await self._clients.aclose()

    # -- what subclasses provide --------------------------------------------------------------
    def body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, answer: Any, texts: list[str]) -> list[dict[str, float]]:
        """Scores from a decoded JSON answer; RemoteAnswerError when it is not usable."""
        raise NotImplementedError

    def probe_texts(self) -> list[str]:
        return ["Hello! How can I help you today?"]

    # -- HTTP ---------------------------------------------------------------------------------
    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.request_s, connect=self.connect_s)

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=self._timeout(), transport=self._transport, follow_redirects=False,
            limits=httpx.Limits(max_connections=self.max_connections,
                                max_keepalive_connections=self.max_connections))

    def _headers(self) -> dict[str, str]:
        h = {"content-type": "application/json", "accept": "application/json"}
        if self._key:
            h["authorization"] = f"Bearer {self._key}"
        return h

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def answer_error(self, problem: str) -> RemoteAnswerError:
        return RemoteAnswerError(self.name, self.host, self._scrub(problem))

    def _json(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 300:
            raise RemoteBackendError(self.name, self.host, self._scrub(
                f"HTTP {resp.status_code}{_error_excerpt(resp)}"))
        try:
            return resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            ctype = resp.headers.get("content-type", "none")
            raise self.answer_error(f"answer is not JSON (content-type {ctype})") from None

    async def post(self, texts: list[str]) -> list[dict[str, float]]:
        """One request for ``texts``, bounded by ``request_timeout_ms`` from first byte out to
        last byte in."""
        client = self._clients.get()
        try:
            async with asyncio.timeout(self.request_s):
                with httpx_errors(self._failure):
                    resp = await client.post(self.url, json=self.body(texts),
                                             headers=self._headers())
        except TimeoutError:
            raise RemoteBackendTimeoutError(
                self.name, self.host,
                f"no answer within {self.request_s * 1000:.0f} ms (request_timeout_ms)") from None
        return self.read(self._json(resp), texts)


def _error_excerpt(resp: httpx.Response) -> str:
    """A short, single-line reason from an error response (OpenAI-style or plain text)."""
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = resp.text.strip().splitlines()[0] if resp.text.strip() else ""
        return f": {text[:160]}" if text and "<" not in text[:1] else ""
    err = body.get("error") if isinstance(body, dict) else None
    msg = err.get("message") if isinstance(err, dict) else err
    if not isinstance(msg, str) and isinstance(body, dict):
        msg = body.get("message") or body.get("detail")
    return f": {str(msg).splitlines()[0][:160]}" if msg else ""
