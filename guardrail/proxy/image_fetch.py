"""Fetching the images an upstream returns by URL, without becoming an SSRF proxy.

An image URL comes from the upstream's response body, so it is not trusted:

* only ``http``/``https``, no credentials in the URL;
* only from the host (and port) of the upstream that answered, or a host on
  ``GUARDRAIL_IMAGE_FETCH_HOSTS`` (``host``, ``host:port`` or ``*.domain``);
* the host is resolved once and **every** address it resolves to must be public (not private,
  loopback, link-local, multicast, reserved, shared or unspecified; IPv4 inside IPv6 is
  unwrapped). ``GUARDRAIL_IMAGE_FETCH_PRIVATE_HOSTS`` lets named hosts (a self-hosted upstream
  on an internal network) resolve to private or loopback addresses; link-local (cloud
  metadata), multicast and unspecified addresses are never allowed;
* the connection goes to the address that was checked (the URL's host is replaced by it; the
  ``Host`` header and, for TLS, SNI and certificate verification keep the name), so a second
  DNS answer cannot point it elsewhere (DNS rebinding); connections are not kept alive, so one
  host's connection is never reused for another;
* redirects are followed only up to ``GUARDRAIL_IMAGE_FETCH_MAX_REDIRECTS`` hops, each checked
  like the first URL;
* the body is streamed and abandoned past the policy's ``max_image_bytes``; the whole fetch
  (resolution, every hop, the body) has ``GUARDRAIL_IMAGE_FETCH_TIMEOUT_S``.

An app built with an injected ``httpx`` transport (the built-in scripted upstream, tests) sends
the fetch through that transport, which opens no socket: the scheme, host and redirect rules
still apply; there is no address to resolve or check.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx

from guardrail.errors import (
    ConfigError,
    GuardrailError,
    HttpFailure,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
    httpx_errors,
)
from guardrail.labelling.c2pa_images import ImageError

if TYPE_CHECKING:
    from guardrail.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = {301, 302, 303, 307, 308}
# never allowed, not even for a host on the private list
_ALWAYS_FORBIDDEN = ("unspecified", "multicast", "link_local")
# allowed for a host on the private list
_PRIVATE = ("loopback", "reserved", "private")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ImageFetchError(UpstreamUnreachableError):
    """Fetching an upstream image failed (502, in OpenAI's error format)."""

    code = "upstream_image_fetch_failed"


class ImageURLRefusedError(ImageFetchError):
    """The image URL is not one guardrail fetches from (host, address or redirect rules)."""

    code = "upstream_image_url_refused"


class ImageFetchTimeoutError(UpstreamTimeoutError):
    code = "upstream_image_fetch_timeout"


class BadHostError(ConfigError, ValueError):
    """An image host setting that is not ``host``, ``host:port`` or ``*.domain``."""


class _ConnectFailed(ImageFetchError):
    """One checked address refused the connection (the next one is tried)."""


def _fetch_failure(f: HttpFailure) -> GuardrailError:
    """The image fetch's translator for :func:`guardrail.errors.httpx_errors`."""
    if f.timed_out:
        return ImageFetchTimeoutError("fetching the upstream image timed out")
    if f.kind == "connect":
        return _ConnectFailed(f"fetching the upstream image failed ({f.name})")
    return ImageFetchError(f"fetching the upstream image failed ({f.name})")


def address_problem(ip: IPAddress, *, private_ok: bool = False) -> str | None:
    """Why guardrail will not connect to ``ip`` (``None``: it is a public address)."""
    inner: IPAddress = ip
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            inner = ip.sixtofour
        elif ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for candidate in dict.fromkeys((inner, ip)):  # an embedded IPv4 address first
        for name in _ALWAYS_FORBIDDEN:
            if getattr(candidate, f"is_{name}"):
                return name.replace("_", "-")
        for name in _PRIVATE:
            if getattr(candidate, f"is_{name}") and not private_ok:
                return name
        if not candidate.is_global and not private_ok:
            return "not globally reachable"
    return None


@dataclass(frozen=True)
class HostRule:
    """``host``, ``host:port``, ``[v6]:port`` or ``*.domain`` (any port unless one is given)."""

    host: str
    port: int | None = None
    wildcard: bool = False

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        text = entry.strip().lower()
        wildcard = text.startswith("*.")
        if wildcard:
            text = text[2:]
        try:
            url = httpx.URL(f"http://{text}")
        except httpx.InvalidURL as exc:
            raise BadHostError(f"not a host[:port]: {entry!r} ({exc})") from None
        host = url.raw_host.decode("ascii")
        if not host or url.path not in ("", "/") or url.query or url.userinfo:
            raise BadHostError(f"not a host[:port]: {entry!r}")
        return cls(host, url.port, wildcard)

    @classmethod
    def of_url(cls, url: str) -> HostRule:
        """The exact origin host and port of a base URL (the upstream's)."""
        u = httpx.URL(url)
        return cls(u.raw_host.decode("ascii").lower(), u.port or _DEFAULT_PORTS.get(u.scheme))

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class _Target:
    url: httpx.URL  # as the upstream wrote it (redirects are joined against it)
    host: str
    addresses: tuple[str, ...]  # checked; empty when an injected transport does the sending


class ImageFetcher:
    """Fetch one upstream image under the rules in this module's docstring."""

    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str] = (),
        private_hosts: Sequence[str] = (),
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        max_redirects: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.allowed = [HostRule.parse(h) for h in allowed_hosts]
        self.private = [HostRule.parse(h) for h in private_hosts]
        self.timeout_s = timeout_s
        self.max_redirects = max_redirects
        self.pinned = transport is None  # real sockets: resolve, check, connect to the check
        self.resolver = resolver or system_resolver
        self.client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, verify=verify,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        )

    @classmethod
    def from_settings(cls, settings: Settings,
                      transport: httpx.AsyncBaseTransport | None = None) -> ImageFetcher:
        try:
            return cls(allowed_hosts=settings.image_fetch_hosts,
                       private_hosts=settings.image_fetch_private_hosts,
                       timeout_s=settings.image_fetch_timeout_s,
                       connect_timeout_s=settings.upstream_connect_timeout_s,
                       max_redirects=settings.image_fetch_max_redirects, transport=transport)
        except ValueError as exc:
            raise ConfigError(f"GUARDRAIL_IMAGE_FETCH_(PRIVATE_)HOSTS: {exc}") from None

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _target(self, url: httpx.URL, upstream: HostRule | None) -> _Target:
        if url.scheme not in _DEFAULT_PORTS:
            raise ImageURLRefusedError(f"image URL scheme {url.scheme!r} is not http(s)")
        if url.userinfo:
            raise ImageURLRefusedError("image URL carries credentials")
        host = url.raw_host.decode("ascii").lower()
        port = url.port or _DEFAULT_PORTS[url.scheme]
        rules = [upstream, *self.allowed] if upstream else self.allowed
        if not any(r.matches(host, port) for r in rules):
            raise ImageURLRefusedError(
                f"image host {host}:{port} is neither the upstream's nor on "
                "GUARDRAIL_IMAGE_FETCH_HOSTS")
        if not self.pinned:
            return _Target(url, host, ())
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a.split("%", 1)[0])
                             for a in await self.resolver(host, port)]
            except OSError as exc:
                raise ImageFetchError(f"image host {host} does not resolve "
                                      f"({type(exc).__name__})") from None
        if not addresses:
            raise ImageFetchError(f"image host {host} does not resolve")
        private_ok = any(r.matches(host, port) for r in self.private)
        for ip in addresses:
            problem = address_problem(ip, private_ok=private_ok)
            if problem is not None:
                raise ImageURLRefusedError(
                    f"image host {host} resolves to a {problem} address ({ip})")
        return _Target(url, host, tuple(str(a) for a in addresses))

    async def _open(self, target: _Target) -> httpx.Response:
        if not target.addresses:
            return await self.client.send(self.client.build_request("GET", target.url),
                                          stream=True)
        headers = {"Host": target.url.netloc.decode("ascii")}
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        last: _ConnectFailed | None = None
        for address in target.addresses:  # each one checked; the first that connects
            request = self.client.build_request(
                "GET", target.url.copy_with(host=address), headers=headers,
                extensions=extensions)
            try:
                with httpx_errors(_fetch_failure):
                    return await self.client.send(request, stream=True)
            except _ConnectFailed as exc:
                last = exc
        assert last is not None
        raise last

    async def _read(self, resp: httpx.Response, limit: int) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ImageError(f"upstream image is over the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > limit:  # stop reading: the rest is never downloaded
                raise ImageError(f"upstream image is over the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    async def fetch(self, url: str, limit: int, upstream_base: str | None = None) -> bytes:
        """The image's bytes. Raises :class:`ImageURLRefusedError`, :class:`ImageFetchError`,
        :class:`ImageFetchTimeoutError` or (too large) :class:`ImageError`."""
        upstream = HostRule.of_url(upstream_base) if upstream_base else None
        try:
            current = httpx.URL(url)
        except httpx.InvalidURL:
            raise ImageURLRefusedError("image URL is not a valid URL") from None
        try:
            with anyio.fail_after(self.timeout_s), httpx_errors(_fetch_failure):
                for _hop in range(self.max_redirects + 1):
                    target = await self._target(current, upstream)
                    resp = await self._open(target)
                    try:
                        location = resp.headers.get("location")
                        if resp.status_code in _REDIRECTS and location:
                            current = current.join(location)
                            continue
                        if resp.status_code >= 400:
                            raise ImageFetchError(
                                f"fetching the upstream image failed: HTTP {resp.status_code}")
                        return await self._read(resp, limit)
                    finally:
                        await resp.aclose()
        except TimeoutError:
            raise ImageFetchTimeoutError(
                f"fetching the upstream image took over {self.timeout_s:g} s") from None
        raise ImageURLRefusedError(
            f"the image URL redirects more than {self.max_redirects} times")
