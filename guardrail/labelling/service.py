"""The labelling service held on ``AppState.extras["labelling"]``: signer, anchors, image cache.

:func:`setup_labelling` is the start-up hook (call it in the app's lifespan, in each worker).
It reads PEM material and, without a configured key, creates the development PKI; it makes no
native c2pa handle (those are created lazily in the worker thread that signs).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrail.labelling.c2pa_images import ImageSigner
from guardrail.labelling.settings import C2paSettings
from guardrail.labelling.signer import SignCallback, load_signer_source, read_anchors

log = logging.getLogger("guardrail.labelling")

EXTRAS_KEY = "labelling"


class ImageCache:
    """Signed images served at ``GET /v1/guardrail/images/{id}`` when a client asked for a URL.

    Bounded by item count, total bytes and age (oldest evicted first). Ids are 128-bit random:
    the URL is a capability, as upstream image URLs are.
    """

    def __init__(self, max_items: int, max_bytes: int, ttl_s: float) -> None:
        self.max_items, self.max_bytes, self.ttl_s = max_items, max_bytes, ttl_s
        self._items: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes, mime: str) -> str | None:
        """Store and return an id, or None when the image cannot fit at all."""
        if self.max_items == 0 or len(data) > self.max_bytes:
            return None
        image_id = "img_" + secrets.token_urlsafe(16)
        with self._lock:
            self._expire(time.monotonic())
            while self._items and (len(self._items) >= self.max_items
                                   or self._bytes + len(data) > self.max_bytes):
                _, (_, _, old) = self._items.popitem(last=False)
                self._bytes -= len(old)
            self._items[image_id] = (time.monotonic(), mime, data)
            self._bytes += len(data)
        return image_id

    def get(self, image_id: str) -> tuple[str, bytes] | None:
        with self._lock:
            self._expire(time.monotonic())
            item = self._items.get(image_id)
            return (item[1], item[2]) if item else None

    def _expire(self, now: float) -> None:
        while self._items:
            first = next(iter(self._items))
            if now - self._items[first][0] <= self.ttl_s:
                break
            _, _, data = self._items.pop(first)
            self._bytes -= len(data)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"items": len(self._items), "bytes": self._bytes}


class RedisImageCache:
    """The same cache in Redis (``GUARDRAIL_REDIS_URL``), so any worker or node serves a URL
    another signed: ``SET ... EX`` with the TTL, bounded by Redis's own memory policy; one image
    is refused above ``max_bytes``. Redis unreachable: this process's cache serves (logged),
    so a URL still works on the worker that signed it."""

    def __init__(self, client: Any, local: ImageCache, namespace: str = "guardrail") -> None:
        self.r, self.local = client, local
        self.prefix = f"{namespace}:image:"

    def put(self, data: bytes, mime: str) -> str | None:
        import redis

        if self.local.max_items == 0 or len(data) > self.local.max_bytes:
            return None
        image_id = "img_" + secrets.token_urlsafe(16)
        try:
            self.r.set(self.prefix + image_id, mime.encode() + b"\n" + data,
                       ex=max(1, int(self.local.ttl_s)))
            return image_id
        except redis.RedisError as exc:
            log.warning("image cache: Redis unreachable (%s); kept in this process",
                        type(exc).__name__)
            return self.local.put(data, mime)

    def get(self, image_id: str) -> tuple[str, bytes] | None:
        import redis

        try:
            got = self.r.get(self.prefix + image_id)
        except redis.RedisError:
            got = None
        if got is None:
            return self.local.get(image_id)
        mime, _, data = bytes(got).partition(b"\n")
        return mime.decode(), data

    def stats(self) -> dict[str, Any]:
        return {**self.local.stats(), "shared": "redis"}


@dataclass
class LabellingService:
    settings: C2paSettings
    signer: ImageSigner | None
    anchors_pem: bytes
    cache: ImageCache | RedisImageCache
    problem: str | None = None
    _policy_anchors: dict[str, bytes] = field(default_factory=dict)

    def anchors_for(self, extra_file: str | None) -> bytes:
        """Configured anchors plus a policy's ``labelling.images.trust_anchors`` file."""
        if not extra_file:
            return self.anchors_pem
        if extra_file not in self._policy_anchors:
            self._policy_anchors[extra_file] = read_anchors(Path(extra_file))
        return self.anchors_pem + self._policy_anchors[extra_file]

    def describe(self) -> dict[str, Any]:
        import c2pa

        out: dict[str, Any] = {
            "c2pa_python": getattr(c2pa, "__version__", "unknown"),
            "c2pa_sdk": c2pa.sdk_version(),
            "signing": self.signer is not None,
            "trust_anchors": self.anchors_pem.count(b"BEGIN CERTIFICATE"),
            "image_cache": self.cache.stats(),
            "text_c2pa": False,
        }
        if self.signer is not None:
            out["signer"] = self.signer.source.describe()
        if self.problem:
            out["problem"] = self.problem
        return out


def setup_labelling(
    app_state: Any,
    settings: C2paSettings | None = None,
    *,
    callback: SignCallback | None = None,
) -> dict[str, Any]:
    """Start-up hook: build the service, store it on ``app_state.extras["labelling"]`` and
    return what /readyz should show (also stored as ``extras["ready_labelling"]``).

    ``callback`` plugs in a KMS/HSM signer (``bytes -> signature``) with the public chain from
    ``GUARDRAIL_C2PA_CERT``. Configuration errors (unreadable key, bad PEM) propagate: the
    server should not start with a broken signer.
    """
    s = settings or C2paSettings()
    source = load_signer_source(s, callback=callback)
    problem = None
    if source is None:
        problem = ("no C2PA signer: set GUARDRAIL_C2PA_CERT and GUARDRAIL_C2PA_KEY; policies "
                   "with labelling.images.sign=true will refuse image requests")
        log.error("C2PA: %s", problem)
    local = ImageCache(s.image_cache_items, s.image_cache_bytes, s.image_cache_ttl_s)
    cache: ImageCache | RedisImageCache = local
    app_settings = getattr(app_state, "settings", None)
    redis_url = getattr(app_settings, "redis_url", None)
    if redis_url:  # URLs served by every worker and node
        import redis

        cache = RedisImageCache(
            redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=0.5),
            local, getattr(app_settings, "redis_namespace", "guardrail"))
    service = LabellingService(
        settings=s,
        signer=ImageSigner(source) if source else None,
        anchors_pem=(source.anchors_pem if source else read_anchors(s.trust_anchors)),
        cache=cache,
        problem=problem,
    )
    extras = getattr(app_state, "extras", None)
    if extras is None:
        extras = {}
        app_state.extras = extras
    extras[EXTRAS_KEY] = service
    policies = getattr(getattr(app_state, "policies", None), "policies", None) or {}
    for policy in policies.values():  # fail at start-up on an unreadable anchors file
        service.anchors_for(policy.labelling.images.trust_anchors)
    info = service.describe()
    extras["ready_labelling"] = info  # /readyz shows extras["ready_*"]
    return info


def get_labelling(app_state: Any) -> LabellingService:
    """The service, set up on first use when the start-up hook was not called."""
    extras = getattr(app_state, "extras", None)
    if extras is None or EXTRAS_KEY not in extras:
        setup_labelling(app_state)
        extras = app_state.extras
    service: LabellingService = extras[EXTRAS_KEY]
    return service
