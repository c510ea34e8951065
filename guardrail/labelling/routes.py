"""``POST /v1/guardrail/verify``: an image in; its C2PA manifest, validation state and trust
against the configured anchors out.

The image may come as the raw body (``Content-Type: image/*`` or
``application/octet-stream``), as a multipart field ``file`` (or ``image``), or as JSON
``{"image": "<base64 or data: URL>"}`` (``b64_json`` is accepted too).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request

from guardrail.deps import ClientDep, State
from guardrail.errors import BadRequestError, PayloadTooLargeError
from guardrail.labelling.c2pa_images import verify_async
from guardrail.labelling.service import get_labelling
from guardrail.proxy.schemas import parse_json

router = APIRouter(prefix="/v1/guardrail", tags=["labelling"])


def _b64(value: str) -> bytes:
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("'image' is not valid base64.", param="image",
                              code="invalid_value") from None


async def _image_from(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"Request body exceeds {limit} bytes.")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1)
        try:
            upload = form.get("file") or form.get("image")
            if upload is None or isinstance(upload, str):
                raise BadRequestError("multipart body needs a file field 'file' or 'image'.",
                                      param="file", code="missing_required_parameter")
            data = await upload.read(limit + 1)
        finally:
            await form.close()
    else:
        data = await request.body()
        if ctype == "application/json":
            body = parse_json(data)
            value = body.get("image", body.get("b64_json")) if isinstance(body, dict) else None
            if not isinstance(value, str):
                raise BadRequestError("JSON body needs 'image' (base64 or data: URL).",
                                      param="image", code="missing_required_parameter")
            data = _b64(value)
    if len(data) > limit:
        raise PayloadTooLargeError(f"Image exceeds {limit} bytes.")
    if not data:
        raise BadRequestError("No image in the request body.", code="missing_required_parameter")
    return data


@router.post("/verify")
async def verify(request: Request, state: State, client: ClientDep) -> dict[str, Any]:
    """Validate an image's C2PA manifest. ``state`` is ``Trusted`` (valid and signed by a
    certificate chaining to a configured anchor), ``Valid`` (intact, signer not trusted),
    ``Invalid`` (tampered or broken), or null with ``has_manifest: false``."""
    svc = get_labelling(state)
    cfg = client.policy.labelling.images
    anchors = svc.anchors_for(cfg.trust_anchors)
    data = await _image_from(request, cfg.max_image_bytes)
    result = await verify_async(data, anchors)
    out = result.as_dict()
    out["trust_anchors"] = {
        "count": anchors.count(b"BEGIN CERTIFICATE"),
        "development_ca": bool(svc.signer and svc.signer.source.development),
    }
    return out
