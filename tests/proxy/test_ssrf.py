"""Image URLs in the upstream's body are not a way into the proxy's network.

Loopback only: the upstream runs on 127.0.0.1 (its host is on the private list, as a
self-hosted upstream would be), a sentinel server on 127.0.0.2 stands for everything else on
the proxy's network and must never see a connection.
"""

from __future__ import annotations

import ipaddress
import json
import ssl
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from guardrail.proxy.image_fetch import HostRule, ImageFetcher, ImageFetchError, address_problem
from tests.labelling.fakes import make_image

PNG = make_image("png")
CLIENT = "sk-ssrf-client"
POLICY = """name: default
scanners: []
labelling:
  images:
    thumbnail: "off"
    max_image_bytes: 200000
"""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: list[tuple[str, int]] = []
        self.requests: list[dict[str, Any]] = []
        self.big_done = threading.Event()
        self.big_completed = False
        super().__init__((host, 0), handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections.append(client_address)  # any connection at all, request or not
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a refused TLS handshake is expected in one test; assertions say what happened

    @property
    def origin(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str, **headers: str) -> None:
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # the upstream's images API: answers with the prompt as URL
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.server.requests.append({"path": self.path, "host": self.headers["host"]})
        data = {"created": 0, "data": [{"url": body["prompt"]}]}
        self._send(200, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:
        self.server.requests.append({"path": self.path, "host": self.headers["host"]})
        url = urlsplit(self.path)
        if url.path == "/img.png":
            self._send(200, PNG, "image/png")
        elif url.path == "/redirect":
            self._send(302, b"", "text/plain", location=parse_qs(url.query)["to"][0])
        elif url.path == "/slow":
            time.sleep(3)
            self._send(200, PNG, "image/png")
        elif url.path == "/big":  # chunked, no length: 64 MB unless the client stops reading
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                for _ in range(1024):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
                self.server.big_completed = True
            except OSError:
                pass
            finally:
                self.server.big_done.set()
        else:
            self._send(404, b"{}", "application/json")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[_Server, _Server]]:
    upstream, sentinel = _Server("127.0.0.1", _Handler), _Server("127.0.0.2", _Handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (upstream,
                                                                                 sentinel)]
    for t in threads:
        t.start()
    yield upstream, sentinel
    for s in (upstream, sentinel):
        s.shutdown()
        s.server_close()


@pytest.fixture
def sentinel(servers: tuple[_Server, _Server]) -> Iterator[_Server]:
    s = servers[1]
    s.connections.clear()
    yield s
    assert s.connections == [] and s.requests == [], "the sentinel was reached"


@pytest.fixture
def upstream(servers: tuple[_Server, _Server]) -> _Server:
    servers[0].requests.clear()
    return servers[0]


Proxy = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


@pytest.fixture
def proxy(tmp_path: Path, upstream: _Server) -> Proxy:
    from guardrail.app import create_app
    from guardrail.settings import Settings

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        pdir = tmp_path / "p"
        pdir.mkdir(exist_ok=True)
        (pdir / "default.yaml").write_text(POLICY, encoding="utf-8")
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path}/ssrf.db", "policy_dir": pdir,
            "upstream_url": upstream.origin + "/v1", "api_keys": [CLIENT],
            # the test upstream is on loopback: its host (and only it) may be
            "image_fetch_private_hosts": ["127.0.0.1"], **overrides}
        app = create_app(Settings(**values))  # no injected transport: real sockets
        state = app.state.guardrail
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://proxy.test", timeout=20,
                                     headers={"Authorization": f"Bearer {CLIENT}"}) as http:
            yield http, state
        await state.extras["image_fetcher"].aclose()
        state.store.engine.dispose()

    return start


async def generate(http: httpx.AsyncClient, image_url: str) -> httpx.Response:
    return await http.post("/v1/images/generations",
                           json={"model": "img", "prompt": image_url, "response_format": "url"})


def refused(r: httpx.Response, state: Any, needle: str,
            code: str = "upstream_image_url_refused") -> dict[str, Any]:
    assert r.status_code in (502, 504), r.text
    err = r.json()["error"]
    assert err["code"] == code and err["type"] == "upstream_error", err
    assert needle in err["message"], err["message"]
    rec = state.store.get(err["message"].rsplit("incident ", 1)[1].rstrip(")"))
    assert rec["kind"] == "labelling_failure" and rec["category"] == code
    return rec  # type: ignore[no-any-return]


async def test_an_image_on_the_upstreams_host_is_fetched_and_signed(
        proxy: Proxy, upstream: _Server, sentinel: _Server) -> None:
    async with proxy() as (http, _state):
        r = await generate(http, upstream.origin + "/img.png")
        assert r.status_code == 200, r.text
        assert r.json()["guardrail"]["c2pa"]["signed"] == 1
        served = await http.get(r.json()["data"][0]["url"])
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    assert {"path": "/img.png", "host": upstream.origin[7:]} in upstream.requests


@pytest.mark.parametrize("overrides", [
    pytest.param({}, id="not-the-upstream"),
    pytest.param({"image_fetch_private_hosts": ["127.0.0.1", "localhost"]}, id="private-list"),
])
async def test_another_loopback_host_is_refused(proxy: Proxy, sentinel: _Server,
                                                overrides: dict[str, Any]) -> None:
    async with proxy(**overrides) as (http, state):
        refused(await generate(http, sentinel.origin + "/steal"), state,
                "neither the upstream's nor on GUARDRAIL_IMAGE_FETCH_HOSTS")
        # the upstream's host on another port is another origin
        port = sentinel.server_address[1]
        refused(await generate(http, f"http://127.0.0.1:{port}/x"), state, "neither")
        for url in ("file:///etc/passwd", "gopher://127.0.0.2/", "http://u:p@127.0.0.2/"):
            refused(await generate(http, url), state, "image URL")


async def test_an_allow_listed_host_on_a_private_address_is_refused(
        proxy: Proxy, sentinel: _Server) -> None:
    """On the allow-list by name, but it resolves to loopback: refused after resolution."""
    port = sentinel.server_address[1]
    async with proxy(image_fetch_hosts=["127.0.0.2", "*.internal.test"]) as (http, state):
        answers = {"cdn.internal.test": ["127.0.0.2"],
                   "mixed.internal.test": ["93.184.216.34", "127.0.0.2"]}

        async def resolver(host: str, _port: int) -> list[str]:
            return answers[host]

        state.extras["image_fetcher"].resolver = resolver
        refused(await generate(http, sentinel.origin + "/steal"), state, "loopback address")
        refused(await generate(http, f"http://cdn.internal.test:{port}/x"), state,
                "resolves to a loopback address (127.0.0.2)")
        # every address is checked, not only the first
        refused(await generate(http, f"http://mixed.internal.test:{port}/x"), state,
                "resolves to a loopback address (127.0.0.2)")


async def test_the_connection_goes_to_the_checked_address(
        proxy: Proxy, upstream: _Server, sentinel: _Server) -> None:
    """A name the system cannot resolve: fetched only because guardrail connects to the
    address it resolved and checked (a second lookup cannot rebind it), Host kept."""
    port = upstream.server_address[1]
    async with proxy(image_fetch_hosts=[f"img.internal.test:{port}"],
                     image_fetch_private_hosts=["img.internal.test"]) as (http, state):
        calls: list[str] = []

        async def resolver(host: str, _port: int) -> list[str]:
            calls.append(host)
            return ["127.0.0.1"] if len(calls) == 1 else ["127.0.0.2"]  # rebinds afterwards

        state.extras["image_fetcher"].resolver = resolver
        r = await generate(http, f"http://img.internal.test:{port}/img.png")
    assert r.status_code == 200, r.text
    assert calls == ["img.internal.test"]
    assert {"path": "/img.png", "host": f"img.internal.test:{port}"} in upstream.requests


async def test_redirects_are_checked_hop_by_hop(proxy: Proxy, upstream: _Server,
                                                sentinel: _Server) -> None:
    to_sentinel = f"{upstream.origin}/redirect?to={sentinel.origin}/steal"
    to_image = f"{upstream.origin}/redirect?to=/img.png"
    async with proxy() as (http, state):
        refused(await generate(http, to_sentinel), state, "neither the upstream's")
        assert (await generate(http, to_image)).status_code == 200
    async with proxy(image_fetch_max_redirects=0) as (http, state):
        refused(await generate(http, to_image), state, "redirects more than 0 times")


async def test_size_and_time_limits(proxy: Proxy, upstream: _Server, sentinel: _Server) -> None:
    async with proxy(image_fetch_timeout_s=0.5) as (http, state):
        t0 = time.monotonic()
        refused(await generate(http, upstream.origin + "/slow"), state, "took over 0.5 s",
                code="upstream_image_fetch_timeout")
        assert time.monotonic() - t0 < 2.5
    async with proxy() as (http, state):
        upstream.big_done.clear()
        r = await generate(http, upstream.origin + "/big")
        assert r.status_code == 502 and "over the 200000-byte limit" in r.text
        assert upstream.big_done.wait(10)
    assert not upstream.big_completed  # reading stopped: the 64 MB were never all sent


@pytest.mark.parametrize(("address", "problem"), [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("127.0.0.2", "loopback"), ("::1", "loopback"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("fc00::1", "private"), ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "not globally reachable"),
    ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("93.184.216.34", None),
    ("2606:2800:220:1:248:1893:25c8:1946", None),
])
def test_address_rules(address: str, problem: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert address_problem(ip) == problem
    if problem in ("loopback", "private"):
        assert address_problem(ip, private_ok=True) is None
    if problem in ("link-local", "multicast", "unspecified"):
        assert address_problem(ip, private_ok=True) == problem  # never, even when listed


def test_host_rules() -> None:
    assert HostRule.parse("CDN.Example.com").matches("cdn.example.com", 8443)
    assert not HostRule.parse("cdn.example.com:443").matches("cdn.example.com", 80)
    wild = HostRule.parse("*.blob.core.windows.net")
    assert wild.matches("acct.blob.core.windows.net", 443)
    assert not wild.matches("blob.core.windows.net.evil.test", 443)
    assert not wild.matches("evilblob.core.windows.net", 443)
    assert HostRule.parse("[::1]:8080") == HostRule("::1", 8080)
    assert HostRule.of_url("https://api.openai.com/v1") == HostRule("api.openai.com", 443)
    with pytest.raises(ValueError, match="not a host"):
        HostRule.parse("https://x.test/path")
    with pytest.raises(ValueError):
        ImageFetcher(allowed_hosts=["a b/c?d"])


def _tls_server(name: str) -> tuple[_Server, ssl.SSLContext]:
    """An HTTPS image server on 127.0.0.1 whose certificate names ``name`` (its own CA)."""
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ssrf test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    tmp = Path(tempfile.mkdtemp())
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "leaf.pem", tmp / "key.pem")
    srv = _Server("127.0.0.1", _Handler)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    client_ctx = ssl.create_default_context(cadata=ca.public_bytes(
        serialization.Encoding.PEM).decode())
    return srv, client_ctx


async def test_tls_to_the_checked_address_verifies_the_name() -> None:
    """https: guardrail connects to the resolved address, and TLS (SNI and the certificate
    check) is still about the URL's name, not the address."""
    srv, trust = _tls_server("img.internal.test")
    port = srv.server_address[1]

    async def resolver(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    hosts = ["img.internal.test", "other.internal.test"]
    fetcher = ImageFetcher(allowed_hosts=hosts, private_hosts=hosts, resolver=resolver,
                           verify=trust)
    try:
        data = await fetcher.fetch(f"https://img.internal.test:{port}/img.png", 10**6)
        assert data == PNG
        assert srv.requests[-1]["host"] == f"img.internal.test:{port}"
        # same address, another name: the certificate does not name it, so no image
        with pytest.raises(ImageFetchError, match="ConnectError"):
            await fetcher.fetch(f"https://other.internal.test:{port}/img.png", 10**6)
    finally:
        await fetcher.aclose()
        srv.shutdown()
        srv.server_close()
