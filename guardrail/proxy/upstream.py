"""The pooled upstream client. The upstream key comes from settings and is never logged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from guardrail.errors import UpstreamError, httpx_errors, upstream_failure

# Client request headers worth passing on to the upstream (everything else stays here).
FORWARD_HEADERS = ("openai-organization", "openai-project", "user-agent", "x-request-id")


def forward_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() in FORWARD_HEADERS}


# Request headers a client sends that must not reach the upstream as-is.
_DROP = {"host", "authorization", "api-key", "content-length", "connection", "accept-encoding",
         "transfer-encoding", "keep-alive", "te", "upgrade", "proxy-authorization"}


class UpstreamClient:
    """One ``httpx.AsyncClient`` per process (connection pool, timeouts).

    ``transport`` lets the built-in scripted upstream (and tests) plug in without a socket.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
        max_connections: int = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
            transport=transport,
            follow_redirects=False,
        )

    def _headers(self, incoming: dict[str, str] | None) -> dict[str, str]:
        out = {k: v for k, v in (incoming or {}).items() if k.lower() not in _DROP}
        out["content-type"] = "application/json" if "content-type" not in {
            k.lower() for k in out} else out.get("content-type", "application/json")
        if self._api_key:
            out["authorization"] = f"Bearer {self._api_key}"
        return out

    def _url(self, path: str, base_url: str | None) -> str:
        return f"{(base_url or self.base_url).rstrip('/')}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        base_url: str | None = None,
    ) -> httpx.Response:
        """Send a request and read the whole response. 4xx/5xx become :class:`UpstreamError`
        carrying the upstream body; transport failures become 502/504."""
        with httpx_errors(upstream_failure):
            resp = await self.client.request(
                method, self._url(path, base_url), content=content, headers=self._headers(headers)
            )
        if resp.status_code >= 400:
            raise UpstreamError(resp.status_code, resp.content, resp.headers.get("content-type"))
        return resp

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        content: bytes,
        headers: dict[str, str] | None = None,
        base_url: str | None = None,
    ) -> AsyncIterator[httpx.Response]:
        req = self.client.build_request(
            "POST", self._url(path, base_url), content=content, headers=self._headers(headers)
        )
        with httpx_errors(upstream_failure):
            resp = await self.client.send(req, stream=True)
        try:
            if resp.status_code >= 400:
                with httpx_errors(upstream_failure):
                    body = await resp.aread()
                raise UpstreamError(resp.status_code, body, resp.headers.get("content-type"))
            yield resp
        finally:
            with httpx_errors(upstream_failure):
                await resp.aclose()

    @staticmethod
    async def lines(resp: httpx.Response) -> AsyncIterator[str]:
        """The lines of an open streamed response; a failure mid-stream is ours (502/504)."""
        with httpx_errors(upstream_failure):
            async for line in resp.aiter_lines():
                yield line

    async def aclose(self) -> None:
        await self.client.aclose()

    def describe(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key_configured": bool(self._api_key)}
