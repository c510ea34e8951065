"""Sign images with a C2PA manifest, and read / verify them.

The manifest says: action ``c2pa.created`` with digitalSourceType ``trainedAlgorithmicMedia``
and the upstream model as ``softwareAgent``; guardrail as claim generator; a custom assertion
(``org.guardrail.policy``) with policy name, version and request id. A manifest the upstream
already embedded is kept as a ``componentOf`` ingredient.

Native c2pa objects (Signer, Context) are made lazily per (process, thread): nothing is shared
across ``fork`` and no handle is used by two threads at once. ``sign_async`` / ``verify_async``
run the work in a thread so the event loop never blocks.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio

from guardrail import __version__ as _gr_version
from guardrail.errors import GuardrailError
from guardrail.labelling.config import ImageSigningConfig
from guardrail.labelling.signer import SignerSource

TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
)
MIME_EXT = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class ImageError(GuardrailError):
    """The image cannot be signed: not a JPEG/PNG/WebP, truncated or corrupt."""


class TimestampAuthorityError(GuardrailError):
    """The timestamp authority failed and the policy says ``on_tsa_failure: fail``."""


class SigningError(GuardrailError):
    """c2pa refused to sign for a reason other than the image or the TSA."""


def sniff_mime(data: bytes) -> str | None:
    """The image type from its magic bytes (only the types we sign)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_image(data: bytes, max_bytes: int) -> str:
    """Validate an upstream image before signing; return its MIME type or raise ImageError."""
    if not data:
        raise ImageError("the image is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the image is {len(data)} bytes, over the {max_bytes}-byte limit")
    mime = sniff_mime(data)
    if mime is None:
        raise ImageError("not a JPEG, PNG or WebP image (unrecognised header bytes)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt {mime} image: {exc}") from None
    return mime


@dataclass(frozen=True)
class SignedImage:
    data: bytes
    mime: str
    timestamped: bool
    upstream_manifest: bool
    warnings: tuple[str, ...] = ()


def build_manifest(
    cfg: ImageSigningConfig, *, model: str | None, policy_name: str, policy_version: str,
    request_id: str, mime: str,
) -> dict[str, Any]:
    agent = model or "unknown-model"
    return {
        "claim_generator_info": [{"name": "guardrail", "version": _gr_version}],
        "title": f"{cfg.title}.{MIME_EXT.get(mime, 'bin')}",
        "format": mime,
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [{
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "softwareAgent": {"name": agent},
            }]}},
            {"label": cfg.assertion_label, "data": {
                "policy": policy_name, "policy_version": policy_version,
                "request_id": request_id, "upstream_model": agent,
                "labelled_by": "guardrail",
            }},
        ],
    }


class ImageSigner:
    """Process-wide image signer; holds per-(pid, thread, settings) native contexts."""

    def __init__(self, source: SignerSource) -> None:
        self.source = source
        self._local = threading.local()

    def _context(self, thumbnail: str | int, tsa_url: str | None) -> Any:
        import c2pa

        cache: dict[tuple[Any, ...], Any] | None = getattr(self._local, "contexts", None)
        if cache is None or getattr(self._local, "pid", None) != os.getpid():
            cache = self._local.contexts = {}  # a fork leaves the parent's handles closed
            self._local.pid = os.getpid()
        key = (thumbnail, tsa_url)
        if key not in cache:
            thumb = ({"enabled": False} if thumbnail == "off"
                     else {"enabled": True, "long_edge": int(thumbnail)})
            settings = {"builder": {"thumbnail": thumb},
                        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
            cache[key] = c2pa.Context.from_dict(settings, signer=self.source.make_signer(tsa_url))
        return cache[key]

    def _sign_once(self, data: bytes, mime: str, manifest: dict[str, Any],
                   cfg: ImageSigningConfig, tsa_url: str | None, upstream: bool) -> bytes:
        import c2pa

        builder = c2pa.Builder(manifest, self._context(cfg.thumbnail, tsa_url))
        try:
            if upstream:
                builder.add_ingredient(
                    {"title": "upstream image", "relationship": "componentOf"},
                    mime, io.BytesIO(data))
            out = io.BytesIO()
            builder.sign(mime, io.BytesIO(data), out)
            return out.getvalue()
        finally:
            builder.close()

    def sign(
        self, data: bytes, cfg: ImageSigningConfig, *, model: str | None, policy_name: str,
        policy_version: str, request_id: str,
    ) -> SignedImage:
        """Sign ``data``. Raises ImageError, TimestampAuthorityError or SigningError."""
        import c2pa

        mime = check_image(data, cfg.max_image_bytes)
        upstream = cfg.keep_upstream_manifest and _has_manifest(data, mime)
        manifest = build_manifest(cfg, model=model, policy_name=policy_name,
                                  policy_version=policy_version, request_id=request_id,
                                  mime=mime)
        tsa = cfg.timestamp_authority
        try:
            signed = self._sign_once(data, mime, manifest, cfg, tsa, upstream)
            return SignedImage(signed, mime, tsa is not None, upstream)
        except c2pa.C2paError as exc:
            first = exc
        if tsa is None:
            raise _classify(first, mime)
        # Was it the timestamp authority? Sign without it to find out.
        try:
            signed = self._sign_once(data, mime, manifest, cfg, None, upstream)
        except c2pa.C2paError:
            raise _classify(first, mime) from None
        if cfg.on_tsa_failure == "fail":
            raise TimestampAuthorityError(
                f"timestamp authority {tsa} failed: {str(first).splitlines()[0][:200]}")
        return SignedImage(signed, mime, False, upstream,
                           (f"timestamp authority {tsa} failed; signed without a timestamp",))

    async def sign_async(self, data: bytes, cfg: ImageSigningConfig, **kw: Any) -> SignedImage:
        return await anyio.to_thread.run_sync(lambda: self.sign(data, cfg, **kw))


def _classify(exc: Exception, mime: str) -> GuardrailError:
    name = type(exc).__name__.lower()
    msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
    if any(k in name for k in ("notsupported", "io", "decoding")):
        return ImageError(f"c2pa could not parse the {mime} image: {msg}")
    return SigningError(f"C2PA signing failed: {msg}")


def _has_manifest(data: bytes, mime: str) -> bool:
    import c2pa

    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data))
    except c2pa.C2paError:
        return True  # a manifest is there but broken: keep it as evidence
    if reader is None:
        return False
    reader.close()
    return True


# -- verification ----------------------------------------------------------------------------
@dataclass
class Verification:
    """What a reader learns from an image: state is ``Trusted`` / ``Valid`` / ``Invalid``, or
    None when the image carries no manifest."""

    has_manifest: bool
    state: str | None
    mime: str | None
    manifest: dict[str, Any] | None = None
    manifests: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    ai_generated: bool = False
    digital_source_type: str | None = None
    software_agent: str | None = None
    actions: list[str] = field(default_factory=list)
    guardrail: dict[str, Any] | None = None
    signer: dict[str, Any] | None = None
    error: str | None = None

    @property
    def trusted(self) -> bool:
        return self.state == "Trusted"

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["trusted"] = self.trusted
        return out


def verify_image(data: bytes, anchors_pem: bytes = b"", assertion_label: str =
                 "org.guardrail.policy") -> Verification:
    """Read the manifest of ``data`` and validate it against ``anchors_pem`` (PEM bundle)."""
    import c2pa

    mime = sniff_mime(data)
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if anchors_pem:
        settings["trust"] = {"user_anchors": anchors_pem.decode()}
    ctx = c2pa.Context.from_dict(settings)
    try:
        try:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, ctx)
        except c2pa.C2paError as exc:
            msg = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            if "notsupported" in type(exc).__name__.lower():
                return Verification(False, None, mime, error=f"unsupported asset: {msg}")
            # A manifest store that cannot even be parsed is an invalid manifest.
            return Verification(True, "Invalid", mime, error=msg,
                                problems=[{"code": "manifest.unreadable", "explanation": msg}])
        if reader is None:
            return Verification(False, None, mime)
        with reader:
            return _summarise(reader, mime, assertion_label)
    finally:
        ctx.close()


def _summarise(reader: Any, mime: str | None, label: str) -> Verification:
    import json

    store = json.loads(reader.json())
    active = reader.get_active_manifest() or {}
    results = reader.get_validation_results() or {}
    problems = list((results.get("activeManifest") or {}).get("failure") or [])
    v = Verification(True, reader.get_validation_state(), mime, manifest=active,
                     manifests=len(store.get("manifests") or {}), problems=problems,
                     signer=active.get("signature_info"))
    for a in active.get("assertions") or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions") or []:
                v.actions.append(act.get("action"))
                dst = act.get("digitalSourceType")
                if dst and v.digital_source_type is None:
                    v.digital_source_type = dst
                    agent = act.get("softwareAgent")
                    v.software_agent = agent.get("name") if isinstance(agent, dict) else agent
        elif a.get("label") == label:
            v.guardrail = a.get("data")
    v.ai_generated = bool(v.digital_source_type and (
        v.digital_source_type.endswith(("trainedAlgorithmicMedia",
                                        "compositeWithTrainedAlgorithmicMedia"))))
    return v


async def verify_async(data: bytes, anchors_pem: bytes = b"") -> Verification:
    return await anyio.to_thread.run_sync(verify_image, data, anchors_pem)
