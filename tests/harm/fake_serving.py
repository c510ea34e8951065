"""A fake model server for the ``serving`` harm backend: TEI's ``/info`` + ``/predict`` and the
Open Inference Protocol's ``/v2/models/{model}[/infer]`` on one app (real HTTP in the tests).

Scores come from marker words in each input text (logits per label):
  "IDIOT"    toxic 3, insult 4, obscene 1
  "KILLYOU"  toxic 3, threat 5
  otherwise  every label -4

TEI (``app.state.tei``: ``mode``, ``sleep_s``, ``max_client_batch_size``) speaks toxic-bert's
six labels, answers ``raw_scores: false`` with the softmax over them (as TEI does) and
``raw_scores: true`` with the logits, sorted by score; it refuses a batch that is not a list of
one-element lists (422) or is larger than ``max_client_batch_size`` (413), as TEI does.
``mode``: "ok", "slow" (sleeps ``sleep_s`` first), "fail-500", "not-json", "short" (one
prediction fewer than inputs), "foreign" (go_emotions labels), "embedding" (``/info`` says an
embedding model), "no-info" (``/info`` is 404), "info-503" (``/info`` is 503), "nan-label"
(a prediction without a score).

KServe v2: model "toxic" outputs probabilities (sigmoid of the logits) as ``probs`` [n, 4] for
the labels ``KSERVE_LABELS`` (named in the metadata's non-standard
``outputs[].parameters.labels``), version "3"; model "logits" outputs the logits under
``logits`` with no labels in its metadata; "nested" answers ``data`` as nested rows; "two-outputs"
has ``probs`` and ``embedding``; "wrong-shape" answers [n, 3]; "ints" answers INT64;
"fail-500", "slow" as for TEI; any other model is 404.
Every request's path, body and headers are kept in ``app.state.requests``.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

TEI_LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
KSERVE_LABELS = ["neutral", "insult", "threat", "hate"]
TEI_SHA = "0123456789abcdef0123456789abcdef01234567"


def logits(text: str) -> dict[str, float]:
    out = dict.fromkeys([*TEI_LABELS, *KSERVE_LABELS], -4.0)
    out["neutral"] = 4.0
    if "IDIOT" in text:
        out.update(toxic=3.0, insult=4.0, obscene=1.0, neutral=-2.0)
    if "KILLYOU" in text:
        out.update(toxic=3.0, threat=5.0, neutral=-3.0)
    return out


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x - max(xs)) for x in xs]
    return [e / sum(exps) for e in exps]


def _error(status: int, message: str, kind: str = "backend") -> JSONResponse:
    return JSONResponse({"error": message, "error_type": kind}, status_code=status)


async def _record(app: FastAPI, request: Request) -> Any:
    body = await request.json() if request.method == "POST" else None
    app.state.requests.append({"method": request.method, "path": request.url.path,
                               "body": body, "headers": dict(request.headers)})
    return body


def _tei_predictions(text: str, raw: bool, mode: str) -> list[dict[str, Any]]:
    lg = logits(text)
    labels = TEI_LABELS if mode != "foreign" else ["admiration", "anger", "joy"]
    values = [lg.get(lb, -1.0) for lb in labels]
    scores = values if raw else softmax(values)
    preds = [{"label": lb, "score": s} for lb, s in zip(labels, scores, strict=True)]
    return sorted(preds, key=lambda p: -p["score"])


def build_fake_serving() -> FastAPI:
    app = FastAPI()
    app.state.requests = []
    app.state.tei = {"mode": "ok", "sleep_s": 5.0, "max_client_batch_size": 32}

    @app.get("/info")
    async def info(request: Request) -> Response:
        await _record(app, request)
        tei = app.state.tei
        if tei["mode"] == "no-info":
            return Response(status_code=404)
        if tei["mode"] == "info-503":
            return _error(503, "model is loading", "unhealthy")
        model_type: dict[str, Any] = {"classifier": {
            "id2label": {str(i): lb for i, lb in enumerate(TEI_LABELS)},
            "label2id": {lb: i for i, lb in enumerate(TEI_LABELS)}}}
        if tei["mode"] == "embedding":
            model_type = {"embedding": {"pooling": "cls"}}
        if tei["mode"] == "foreign":
            model_type = {"classifier": {"id2label": {"0": "admiration", "1": "anger"}}}
        return JSONResponse({"model_id": "unitary/toxic-bert", "model_sha": TEI_SHA,
                             "model_dtype": "float16", "model_type": model_type,
                             "max_client_batch_size": tei["max_client_batch_size"],
                             "max_input_length": 512, "version": "1.7.1"})

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = await _record(app, request)
        tei = app.state.tei
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(
                isinstance(x, list) and len(x) == 1 and isinstance(x[0], str) for x in inputs):
            return _error(422, "want a batch of one-element lists", "validation")
        if len(inputs) > tei["max_client_batch_size"]:
            return _error(413, f"batch size {len(inputs)} > maximum allowed batch size "
                          f"{tei['max_client_batch_size']}", "validation")
        mode = tei["mode"]
        if mode == "slow":
            await asyncio.sleep(tei["sleep_s"])
        if mode == "fail-500":
            return _error(500, "CUDA out of memory")
        if mode == "not-json":
            return Response(b"<html>bad gateway</html>", media_type="text/html")
        preds = [_tei_predictions(x[0], bool(body.get("raw_scores")), mode) for x in inputs]
        if mode == "short":
            preds = preds[:-1]
        if mode == "nan-label":
            preds[0][0] = {"label": "toxic"}
        return JSONResponse(preds)

    @app.get("/v2/models/{model}")
    @app.get("/v2/models/{model}/versions/{version}")
    async def metadata(model: str, request: Request) -> Response:
        await _record(app, request)
        if model not in ("toxic", "logits", "nested", "two-outputs", "wrong-shape", "ints",
                         "fail-500", "slow"):
            return JSONResponse({"error": f"model {model} not found"}, status_code=404)
        out: dict[str, Any] = {"name": "logits" if model == "logits" else "probs",
                               "datatype": "FP32", "shape": [-1, 4]}
        if model != "logits":
            out["parameters"] = {"labels": KSERVE_LABELS}
        outputs = [out]
        if model == "two-outputs":
            outputs.append({"name": "embedding", "datatype": "FP32", "shape": [-1, 8]})
        return JSONResponse({"name": model, "versions": ["3"], "platform": "pytorch_torchscript",
                             "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                             "outputs": outputs})

    @app.post("/v2/models/{model}/infer")
    @app.post("/v2/models/{model}/versions/{version}/infer")
    async def infer(model: str, request: Request) -> Response:
        body = await _record(app, request)
        if model == "fail-500":
            return JSONResponse({"error": "model crashed"}, status_code=500)
        if model == "slow":
            await asyncio.sleep(app.state.tei["sleep_s"])
        (inp,) = body["inputs"]
        texts = inp["data"]
        assert inp["datatype"] == "BYTES" and inp["shape"] == [len(texts)]
        labels = KSERVE_LABELS[:3] if model == "wrong-shape" else KSERVE_LABELS
        rows = [[logits(t)[lb] for lb in labels] for t in texts]
        if model != "logits":
            rows = [[sigmoid(v) for v in row] for row in rows]
        data: list[Any] = rows if model == "nested" else [v for row in rows for v in row]
        out = {"name": "logits" if model == "logits" else "probs",
               "shape": [len(texts), len(labels)],
               "datatype": "INT64" if model == "ints" else "FP32", "data": data}
        outputs = [out]
        if model == "two-outputs":
            outputs.append({"name": "embedding", "shape": [len(texts), 1], "datatype": "FP32",
                            "data": [0.0] * len(texts)})
        return JSONResponse({"model_name": model, "model_version": "3", "id": "1",
                             "outputs": outputs})

    return app
