"""Image routes: ``/v1/images/generations`` and ``/v1/images/edits`` with C2PA signing.

Each image the upstream returns (``b64_json``, or fetched from its ``url``) is signed with a
C2PA manifest before it leaves the proxy. The client gets ``b64_json``, or, when it asked for
``response_format: "url"``, a URL on this proxy (``GET /v1/guardrail/images/{id}``) serving
the signed image from a bounded cache. An image that cannot be signed is never released: the
client gets a clear OpenAI-style error and an incident is recorded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from typing import Any

import httpx
from fastapi import APIRouter, Request, Response

from guardrail.deps import AppState, Client, ClientDep, State
from guardrail.errors import (
    ApiError,
    BadRequestError,
    GuardrailError,
    NotFoundError,
    ServiceUnavailableError,
    UpstreamUnreachableError,
)
from guardrail.holds.store import new_response_id
from guardrail.incidents.store import IncidentDraft
from guardrail.labelling.c2pa_images import (
    ImageError,
    SignedImage,
    SigningError,
    TimestampAuthorityError,
    sniff_mime,
)
from guardrail.labelling.service import LabellingService, get_labelling
from guardrail.pipeline.types import Action, RequestMeta, Stage, apply_redactions
from guardrail.proxy.image_fetch import ImageFetcher
from guardrail.proxy.label import Labels
from guardrail.proxy.schemas import parse_json, read_body
from guardrail.proxy.upstream import forward_headers

router = APIRouter(prefix="/v1", tags=["images"])


class UpstreamBadImageError(UpstreamUnreachableError):
    code = "upstream_bad_image"


class ImageSigningFailedError(ApiError):
    status_code = 502
    error_type = "server_error"
    code = "c2pa_signing_failed"


class _Failure(GuardrailError):  # carries one item's failure to the response
    def __init__(self, index: int, source: str, error: Exception, data: bytes | None) -> None:
        super().__init__(str(error))
        self.index, self.source, self.error, self.data = index, source, error, data


def _request_id(request: Request) -> str:
    return str(request.state.request_id)  # the middleware's, and only that


async def _fetch(state: AppState, client: Client, url: str, limit: int) -> bytes:
    """Fetch an image the upstream returned by URL: only from the answering upstream's host or
    the allow-list, never from a non-public address (``guardrail.proxy.image_fetch``). The
    upstream key is never sent."""
    fetcher: ImageFetcher = state.extras["image_fetcher"]
    return await fetcher.fetch(url, limit, client.policy.upstream or state.upstream.base_url)


async def _sign_item(
    state: AppState, svc: LabellingService, client: Client, index: int, item: dict[str, Any],
    model: str | None, request_id: str,
) -> SignedImage | bytes:
    cfg = client.policy.labelling.images
    source, data = "b64_json", None
    try:
        if isinstance(item.get("b64_json"), str):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except (binascii.Error, ValueError):
                raise ImageError("b64_json is not valid base64") from None
        elif isinstance(item.get("url"), str):
            source = "url"
            data = await _fetch(state, client, item["url"], cfg.max_image_bytes)
        else:
            raise ImageError("the upstream item has neither b64_json nor url")
        if not cfg.sign:
            return data
        assert svc.signer is not None
        return await svc.signer.sign_async(
            data, cfg, model=model, policy_name=client.policy.name,
            policy_version=client.policy.version, request_id=request_id)
    except (ImageError, TimestampAuthorityError, SigningError, ApiError) as exc:
        raise _Failure(index, source, exc, data) from exc


async def _incident(state: AppState, client: Client, route: str, request_id: str,
                    model: str | None, answered: str | None, f: _Failure) -> str:
    import c2pa

    categories: dict[type[Exception], str] = {
        ImageError: "upstream_bad_image", TimestampAuthorityError: "tsa_failed",
        SigningError: "signing_failed"}
    if isinstance(f.error, ApiError):  # fetch refused / failed / timed out: its own code
        category = f.error.code or "upstream_image_fetch_failed"
    else:
        category = categories.get(type(f.error), "upstream_bad_image")
    policy = client.policy
    draft = IncidentDraft(
        request_id=request_id, system_id=policy.system, policy_name=policy.name,
        policy_version=policy.version, route=route, stage=Stage.IMAGE.value,
        kind="labelling_failure", action="block", category=category,
        scanner="c2pa", backend="c2pa-python", model="c2pa-rs",
        model_version=c2pa.sdk_version(), api_key_id=client.key_id,
        tenant=client.tenant, upstream_model=answered, requested_model=model,
        content_sha256=hashlib.sha256(f.data).hexdigest() if f.data else None,
        owner=policy.incidents.owner, scanners=[],
        evidence={"index": f.index, "source": f.source, "reason": str(f.error)[:500],
                  "bytes": len(f.data) if f.data is not None else None},
    )
    try:
        from guardrail.proxy.guard import record
    except ImportError:  # pragma: no cover - the lead's module is optional here
        return (await state.store.append_async([draft]))[0]
    return (await record(state, [draft]))[0]


def _error_for(f: _Failure, incident_id: str) -> ApiError:
    e, tail = f.error, f" (image {f.index}; incident {incident_id})"
    if isinstance(e, ImageError):
        return UpstreamBadImageError(f"The upstream returned an image guardrail cannot sign: "
                                     f"{e}{tail}", code="upstream_bad_image")
    if isinstance(e, TimestampAuthorityError):
        return ImageSigningFailedError(f"{e}{tail}", code="c2pa_timestamp_failed")
    if isinstance(e, SigningError):
        return ImageSigningFailedError(f"{e}{tail}")
    assert isinstance(e, ApiError)
    e.message += tail
    return e


async def _label(request: Request, state: AppState, client: Client, route: str,
                 resp: httpx.Response, model: str | None, want_url: bool) -> Response:
    svc = get_labelling(state)
    cfg = client.policy.labelling.images
    request_id = _request_id(request)
    try:
        data = resp.json()
        items = data["data"]
        assert isinstance(items, list) and all(isinstance(i, dict) for i in items)
    except Exception:  # noqa: BLE001 - an upstream that is not OpenAI-compatible
        raise UpstreamUnreachableError("upstream returned a body that is not an OpenAI image "
                                       "response", code="upstream_bad_response") from None
    if cfg.sign and svc.signer is None:
        raise ServiceUnavailableError(svc.problem or "no C2PA signer", code="c2pa_no_signer")
    answered = data.get("model") if isinstance(data.get("model"), str) else None
    meta = _meta(client, route, request_id, model, answered)
    action, ids, hold_ids, redactions = await _guard_prompts(state, client, meta, items)
    if action is Action.BLOCK:
        msg = client.policy.messages.block.format(incident_id=ids[0] if ids else "-")
        raise ContentPolicyError(msg, headers={"X-Guardrail-Incidents": ",".join(ids)})
    for i, text in redactions.items():
        items[i]["revised_prompt"] = text
    if action is Action.HOLD:
        want_url = False  # the held copy carries the signed bytes: a URL cache would expire
    try:
        results = await asyncio.gather(*(
            _sign_item(state, svc, client, i, item, model, request_id)
            for i, item in enumerate(items)))
    except _Failure as f:
        incident_id = await _incident(state, client, route, request_id, model, answered, f)
        raise _error_for(f, incident_id) from None
    warnings: list[str] = []
    for item, res in zip(items, results, strict=True):
        blob = res.data if isinstance(res, SignedImage) else res
        mime = (res.mime if isinstance(res, SignedImage)
                else sniff_mime(blob) or "application/octet-stream")
        if isinstance(res, SignedImage):
            warnings.extend(res.warnings)
        image_id = svc.cache.put(blob, mime) if want_url else None
        if image_id is not None:
            item.pop("b64_json", None)
            item["url"] = str(request.url_for("get_signed_image", image_id=image_id))
        else:
            item.pop("url", None)
            item["b64_json"] = base64.b64encode(blob).decode("ascii")
    signed = [r for r in results if isinstance(r, SignedImage)]
    labels = Labels(client.policy, model, request_id)
    data["guardrail"] = {
        "request_id": request_id, "policy": client.policy.name,
        "policy_version": client.policy.version,
        "disclosure": labels.field(),
        "c2pa": {"signed": len(signed), "timestamped": sum(s.timestamped for s in signed),
                 "upstream_manifests_kept": sum(s.upstream_manifest for s in signed),
                 "development_ca": bool(svc.signer and svc.signer.source.development),
                 "warnings": warnings},
    }
    headers = labels.headers()
    headers["X-Guardrail-C2PA"] = "signed" if signed else "unsigned"
    data["guardrail"].update(decision=action.value, incident_ids=ids)
    if action is not Action.HOLD and signed:
        state.extras["label_counts"].add(client.policy.name, "image", len(signed))
    headers["X-Guardrail-Decision"] = action.value
    if action is Action.HOLD:
        from guardrail.proxy.guard import keep_held

        rid = await keep_held(state, client, meta, json.dumps(data).encode(), hold_ids)
        data = {"created": data.get("created"), "data": [], "guardrail": {
            **data["guardrail"], "response_id": rid,
            "message": client.policy.messages.hold.format(incident_id=ids[0] if ids else "-")}}
        headers["X-Guardrail-Response-Id"] = rid
    return Response(json.dumps(data).encode(), media_type="application/json", headers=headers)


class ContentPolicyError(BadRequestError):
    """An image response whose text (``revised_prompt``) the policy blocks (OpenAI answers
    content-policy refusals on images with 400 ``content_policy_violation``)."""

    code = "content_policy_violation"


def _meta(client: Client, route: str, request_id: str, model: str | None,
          answered: str | None) -> RequestMeta:
    p = client.policy
    return RequestMeta(request_id=request_id, route=route, policy_name=p.name,
                       policy_version=p.version, system_id=p.system, api_key_id=client.key_id,
                       tenant=client.tenant, upstream_model=model, answered_model=answered,
                       response_id=new_response_id())


async def _guard_prompts(
    state: AppState, client: Client, meta: RequestMeta, items: list[dict[str, Any]],
) -> tuple[Action, list[str], list[str], dict[int, str]]:
    """The policy's text scanners on each image's ``revised_prompt`` (the text the image
    was drawn from): (action, incident ids, hold incident ids, redacted prompts by index)."""
    from guardrail.proxy.guard import guard_text

    fields = [(i, it["revised_prompt"]) for i, it in enumerate(items)
              if isinstance(it.get("revised_prompt"), str) and it["revised_prompt"]]
    if not fields:
        return Action.ALLOW, [], [], {}
    results = await asyncio.gather(*(guard_text(
        state, client, meta, text, Stage.OUTPUT, extra={"image": i, "field": "revised_prompt"})
        for i, text in fields))
    action = Action.strongest([g.decision.action for g in results])
    state.metrics.decisions.labels(action.value, client.policy.name).inc()
    redacted = {i: apply_redactions(text, g.decision.redactions)
                for (i, text), g in zip(fields, results, strict=True) if g.decision.redactions}
    return (action, [x for g in results for x in g.incident_ids],
            [x for g in results for x in g.hold_ids], redacted)


def _limit(state: AppState, client: Client) -> int:
    return max(state.settings.max_body_bytes, 2 * client.policy.labelling.images.max_image_bytes)



@router.post("/images/generations")
async def image_generations(request: Request, state: State, client: ClientDep) -> Response:
    raw = await read_body(request, state.settings.max_body_bytes)
    body = parse_json(raw, state.settings.max_json_depth)
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        raise BadRequestError("Missing required parameter: 'prompt'.", param="prompt",
                              code="missing_required_parameter")
    release = await state.extras["limits"].acquire(client.key_id or "-", client.limits)
    try:
        resp = await state.upstream.request(
            "POST", "images/generations", content=raw, headers=forward_headers(request.headers),
            base_url=client.policy.upstream)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        return await _label(request, state, client, "/v1/images/generations", resp, model,
                            body.get("response_format") == "url")
    finally:
        await release()


@router.post("/images/edits")
async def image_edits(request: Request, state: State, client: ClientDep) -> Response:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise BadRequestError("images/edits expects multipart/form-data.", code="invalid_type")
    raw = await read_body(request, _limit(state, client))
    form = await request.form()
    try:
        model, fmt = form.get("model"), form.get("response_format")
        if not isinstance(form.get("prompt"), str):
            raise BadRequestError("Missing required parameter: 'prompt'.", param="prompt",
                                  code="missing_required_parameter")
    finally:
        await form.close()
    release = await state.extras["limits"].acquire(client.key_id or "-", client.limits)
    try:
        resp = await state.upstream.request(
            "POST", "images/edits", content=raw,
            headers={**forward_headers(request.headers), "content-type": ctype},
            base_url=client.policy.upstream)
        return await _label(request, state, client, "/v1/images/edits", resp,
                            model if isinstance(model, str) else None, fmt == "url")
    finally:
        await release()


@router.get("/guardrail/images/{image_id}", name="get_signed_image")
async def get_signed_image(image_id: str, state: State) -> Response:
    """A signed image kept for a ``response_format: "url"`` response (unguessable id)."""
    item = get_labelling(state).cache.get(image_id)
    if item is None:
        raise NotFoundError(f"No image {image_id!r} (expired or never existed).")
    mime, data = item
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600",
                                                    "X-AI-Generated": "true"})
