"""A fake OpenAI image upstream (httpx.MockTransport) and image helpers for labelling tests.

The request's ``model`` picks the behaviour:
  img-jpeg / img-png / img-webp   a fresh image of that format (b64_json, or a URL when the
                                  request asks for response_format=url)
  presigned-<fmt>                 an image already carrying an upstream C2PA manifest
  bad-base64 / bad-bytes / bad-truncated / bad-url   malformed images
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
from PIL import Image

IMAGE_HOST = "http://images.upstream.test"
FORMATS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"),
           "webp": ("WEBP", "image/webp")}


def make_image(fmt: str, size: int = 48, colour: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    img = Image.new("RGB", (size, size), colour)
    for x in range(size):  # some structure, so encoders produce real entropy-coded data
        img.putpixel((x, x), (x * 5 % 256, 255 - x, 30))
    buf = io.BytesIO()
    img.save(buf, FORMATS[fmt][0])
    return buf.getvalue()


def tamper(signed: bytes, original: bytes) -> bytes:
    """Flip one byte of the image data (outside the manifest) of a signed image."""
    probe = original[len(original) // 2: len(original) // 2 + 24]
    pos = signed.find(probe)
    assert pos > 0, "image data not found in the signed file"
    out = bytearray(signed)
    out[pos + 8] ^= 0x55
    return bytes(out)


class FakeImageUpstream:
    def __init__(self, presign: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.files: dict[str, bytes] = {}
        self.presign = presign  # callable(bytes) -> bytes adding an upstream manifest

    def _image_for(self, model: str) -> bytes | str:
        kind, _, fmt = model.partition("-")
        if kind == "img":
            return make_image(fmt)
        if kind == "presigned":
            return self.presign(make_image(fmt))
        if model == "bad-base64":
            return "this is not base64!!"
        if model == "bad-bytes":
            return b"<html>not an image</html>"
        if model == "bad-truncated":
            return make_image("webp")[:40]
        raise AssertionError(f"unknown fake model {model}")

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(IMAGE_HOST):
            name = request.url.path.rsplit("/", 1)[-1]
            if name not in self.files:
                return httpx.Response(404, text="gone")
            return httpx.Response(200, content=self.files[name])
        if request.url.path.endswith("/images/generations"):
            body = json.loads(request.content)
        elif request.url.path.endswith("/images/edits"):
            content = request.content
            model = next(m for m in ("img-jpeg", "img-png", "img-webp")
                         if m.encode() in content)
            body = {"model": model, "response_format":
                    "url" if b'name="response_format"\r\n\r\nurl' in content else "b64_json"}
        else:
            return httpx.Response(404, json={"error": {"message": "no route"}})
        model = body["model"]
        revised = body.get("fake_revised_prompt", "p")  # the text the image was drawn from
        want_url = body.get("response_format") == "url" or model == "bad-url"
        items = []
        for i in range(int(body.get("n", 1))):
            if model == "bad-url":
                items.append({"url": f"{IMAGE_HOST}/files/missing-{i}.png"})
                continue
            img = self._image_for(model)
            if isinstance(img, str):
                items.append({"b64_json": img})
            elif want_url:
                name = f"f{len(self.files)}"
                self.files[name] = img
                items.append({"url": f"{IMAGE_HOST}/files/{name}", "revised_prompt": revised})
            else:
                items.append({"b64_json": base64.b64encode(img).decode(),
                              "revised_prompt": revised})
        return httpx.Response(200, json={"created": 1, "data": items})
