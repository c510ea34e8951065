"""The ``serving`` harm backend: a classifier on a model server of its own (GPUs, scaled apart
from the proxy), reached over HTTP in one of two wire protocols (``serving.protocol``).

``tei``: Hugging Face text-embeddings-inference serving a sequence-classification model
(``text-embeddings-router --model-id unitary/toxic-bert``). What this relies on, from TEI's
source (huggingface/text-embeddings-inference):

* ``POST {url}/predict`` with ``{"inputs": [[t1], [t2], ...], "truncate": true,
  "raw_scores": ...}``. A batch is a list of ONE-element lists: TEI reads a bare list of two
  strings as one *pair* of sequences and rejects three (``PredictInput`` in
  ``router/src/http/types.rs`` and ``docs/openapi.json``; the batch request in
  ``router/tests/test_http_predict.rs``), so ``{"inputs": [t1, t2]}`` would score one text.
* The answer to a batch: per input, a list of ``{"label", "score"}`` sorted by score
  (``PredictResponse::Batch``, ``predict`` in ``router/src/http/server.rs``); a batch larger
  than the server's ``max_client_batch_size`` is refused with 413.
* ``raw_scores: false`` makes TEI normalise: softmax over the labels, sigmoid for a one-label
  model (``predict`` in ``core/src/infer.rs``). Right for a single-label classifier, wrong for
  a multi-label one such as toxic-bert, where softmax would make six independent sigmoid
  heads sum to one (an insult that is also obscene would score about half on each). So
  ``activation: sigmoid`` asks for ``raw_scores: true`` and applies the sigmoid here.
* ``GET {url}/info`` (``Info`` in ``docs/openapi.json``): ``model_id``, ``model_sha`` (our
  ``version``), TEI's ``version``, ``max_client_batch_size`` (``max_batch`` is lowered to it)
  and ``model_type.classifier.id2label`` (the labels, checked against the label map before the
  first scan). A server that does not answer it is still used.

``kserve_v2``: KServe's Open Inference Protocol (KServe, Triton, MLServer, OpenVINO Model
Server; ``specification/protocol/inference_rest.md`` in kserve/open-inference-protocol):

* ``POST {url}/v2/models/{model}[/versions/{model_version}]/infer`` with ``{"inputs":
  [{"name": input_name, "shape": [n], "datatype": "BYTES", "data": [t1, ...]}]}`` (plus
  ``"outputs": [{"name": output_name}]`` when one is named);
* the answer ``{"model_name", "model_version" (optional), "outputs": [{"name", "shape":
  [n, k], "datatype": "FP32", "data": [...]}]}``, ``data`` flat in row-major order (nested
  lists are accepted too); the output read is ``output_name``, or the only one;
* ``GET {url}/v2/models/{model}[/versions/{model_version}]``: ``name``, ``versions``,
  ``platform``, ``inputs``/``outputs`` as ``{name, datatype, shape}``. The protocol has no
  field for class labels, so they come from ``serving.labels`` in the policy (one per output
  column, in order) or, where a custom server adds one, from ``outputs[].parameters.labels``;
  a metadata shape ``[-1, k]`` is checked against them. ``version`` is the answer's
  ``model_version``, else the configured ``model_version``, else the metadata's only version.

Scores (``serving.activation``): ``auto`` = ``sigmoid`` for TEI with the default map (the
toxic-bert family is multi-label), TEI's own softmax with a policy ``label_map``, ``none``
(probabilities as answered) for KServe; ``sigmoid`` for multi-label logits, ``softmax`` for
single-label logits. Every score must end up a finite number in [0, 1].

Labels -> our categories (:mod:`guardrail.harm.taxonomy`): the policy's ``label_map`` when set,
and then it is the whole truth: a label the server reports that it does not name is an error
(map it to null to ignore it). Without one, TEI uses :data:`DEFAULT_TEI_LABELS`, the
detoxify / toxic-bert labels (:data:`guardrail.harm.taxonomy.DETOXIFY_LABELS`: ``toxic`` and
``severe_toxic`` -> ``toxic``, ``obscene`` -> ``profanity``, ``threat`` -> ``threat``,
``insult`` -> ``harassment``, ``identity_hate`` -> ``hate``, and the unbiased checkpoints'
``toxicity``, ``severe_toxicity``, ``identity_attack``, ``sexual_explicit``); a model with other
labels fails with the labels named until the policy maps them. KServe always needs
``label_map``. Where two labels map onto one category the higher score counts.

Transport, bounds, keys and failures are :class:`guardrail.harm.remote.RemoteBackend`'s: one
request per ``max_batch`` chunks (sent concurrently), ``connect_timeout_ms`` and
``request_timeout_ms`` on each, a bearer token read from the variable ``api_key_env`` names,
every httpx failure made ours at :func:`guardrail.errors.httpx_errors`, and an unusable answer
a :class:`guardrail.errors.RemoteAnswerError`, never "safe". ``load()`` needs no network;
``probe: true`` reads the metadata and scores one text at start-up. ``details()`` (``/readyz``,
incidents) names the protocol, the URL's host and port only, the model and its version.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field

from guardrail.errors import RemoteBackendError, RemoteBackendTimeoutError, httpx_errors
from guardrail.harm.remote import RemoteBackend, gather_all
from guardrail.harm.taxonomy import DETOXIFY_LABELS

Protocol = Literal["tei", "kserve_v2"]
Activation = Literal["auto", "none", "sigmoid", "softmax"]

DEFAULT_TEI_LABELS: dict[str, str | None] = DETOXIFY_LABELS
"""TEI's label map when the policy has none: a detoxify / toxic-bert style model."""

_FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")


class ServingOptions(BaseModel):
    """The ``serving:`` block of a ``backend: serving`` harm scanner (the URL, model, key,
    timeouts, ``label_map`` and ``max_batch`` are the scanner's own fields, as for the other
    remote backends)."""

    model_config = ConfigDict(extra="forbid")

    protocol: Protocol = Field(
        "tei", description="`tei`: text-embeddings-inference's POST /predict; `kserve_v2`: "
        "the Open Inference Protocol's POST /v2/models/{model}/infer (KServe, Triton, MLServer).")
    labels: list[str] | None = Field(
        None, min_length=1, description="kserve_v2: the class label of each output column, in "
        "order (unset: the metadata's outputs[].parameters.labels). tei reads them from the "
        "answer.")
    activation: Activation = Field(
        "auto", description="How the server's numbers become scores: `none` = probabilities as "
        "answered, `sigmoid` = multi-label logits, `softmax` = single-label logits (tei: TEI's "
        "own, raw_scores: false). auto = sigmoid for tei with the default (toxic-bert) map, "
        "softmax for tei with a label_map, none for kserve_v2.")
    truncate: bool = Field(True, description="tei: let TEI truncate inputs longer than the "
                           "model's window (false: TEI refuses them, a scanner failure).")
    input_name: str = Field("text", min_length=1,
                            description="kserve_v2: the name of the model's BYTES input.")
    output_name: str | None = Field(
        None, description="kserve_v2: the output tensor to read (unset: the only one).")
    model_version: str | None = Field(
        None, description="kserve_v2: ask for this version (/versions/{v}); unset: the "
        "server's choice.")


def check_serving(opts: ServingOptions, model: str | None,
                  label_map: dict[str, str | None]) -> str | None:
    """Why a ``backend: serving`` configuration cannot work, or None (policy validation)."""
    if opts.protocol == "kserve_v2":
        if not model:
            return "serving kserve_v2 needs model (the name in /v2/models/{model}/infer)"
        if not label_map:
            return ("serving kserve_v2 needs label_map (the model's labels -> harm categories; "
                    "null to ignore one)")
    else:
        if opts.labels is not None:
            return "serving.labels: only for kserve_v2 (tei names each label in its answer)"
        if opts.output_name is not None or opts.model_version is not None:
            return "serving.output_name / model_version: only for kserve_v2"
    if label_map and all(v is None for v in label_map.values()):
        return "label_map maps no label onto a harm category"
    if opts.labels and label_map:
        unmapped = [lb for lb in opts.labels if lb not in label_map]
        if unmapped:
            return f"serving.labels not in label_map: {unmapped[:8]} (map them, null to ignore)"
    return None


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def _softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    return [v for item in data for v in _flatten(item)]


class ServingBackend(RemoteBackend):
    name = "serving"

    def __init__(self, url: str, model: str | None = None, *, protocol: Protocol = "tei",
                 labels: list[str] | None = None, activation: Activation = "auto",
                 truncate: bool = True, input_name: str = "text",
                 output_name: str | None = None, model_version: str | None = None,
                 max_batch: int = 16, **kw: Any) -> None:
        super().__init__(url, model, **kw)
        self.protocol = protocol
        self.truncate = truncate
        self.input_name = input_name
        self.output_name = output_name
        self.model_version = model_version
        self.max_batch = max_batch
        self.labels: list[str] | None = list(labels) if labels else None
        if protocol == "kserve_v2":
            self.version = model_version
        if activation == "auto":
            activation = ("none" if protocol == "kserve_v2"
                          else "softmax" if self.label_map else "sigmoid")
        self.activation = activation
        base = url.rstrip("/")
        if protocol == "tei":
            base = base.removesuffix("/predict")
            self.url, self.meta_url = f"{base}/predict", f"{base}/info"
        else:
            base = base.removesuffix("/v2")
            path = f"/v2/models/{quote(model or '', safe='')}"
            if model_version:
                path += f"/versions/{quote(model_version, safe='')}"
            self.url, self.meta_url = f"{base}{path}/infer", f"{base}{path}"
        parts = urlsplit(self.url)
        self.host, self.endpoint = parts.netloc, parts.path
        self.server: dict[str, Any] = {}  # what the metadata said (TEI version, platform, ...)
        self.metadata = "not read yet"
        self._meta_done = False
        self._server_batch: int | None = None

    # -- contract --------------------------------------------------------------------------
    def missing(self) -> str | None:
        if self.protocol == "kserve_v2" and not self.model:
            return "serving kserve_v2 needs model (the name in /v2/models/{model}/infer)"
        return super().missing()

    def load(self) -> None:
        """No network unless ``probe``: then the metadata is read and one text scored."""
        if self.probe:
            from guardrail.harm.backends import BackendLoadError

            self._key = self._env_key()
            try:
                with (httpx_errors(self._failure),
                      httpx.Client(timeout=self._timeout(), follow_redirects=False) as client):
                    self._apply_metadata(client.get(self.meta_url, headers=self._headers()))
            except RemoteBackendError as err:
                raise BackendLoadError(f"probe failed: {self._scrub(str(err))}") from None
        super().load()

    def details(self) -> dict[str, Any]:
        return {**super().details(), "protocol": self.protocol, "version": self.version,
                "request_batch": self._batch_size(), "activation": self.activation,
                "labels": self.labels,
                "label_map": "policy" if self.label_map else "default (detoxify / toxic-bert)",
                "metadata": self.metadata, "server": self.server}

    # -- requests ----------------------------------------------------------------------------
    def body(self, texts: list[str]) -> dict[str, Any]:
        if self.protocol == "tei":
            # one-element lists: a batch of single sequences (see the module docstring)
            return {"inputs": [[t] for t in texts], "truncate": self.truncate,
                    "raw_scores": self.activation != "softmax"}
        body: dict[str, Any] = {"inputs": [{"name": self.input_name, "shape": [len(texts)],
                                            "datatype": "BYTES", "data": texts}]}
        if self.output_name:
            body["outputs"] = [{"name": self.output_name}]
        return body

    def read(self, answer: Any, texts: list[str]) -> list[dict[str, float]]:
        if self.protocol == "tei":
            return self._read_tei(answer, texts)
        return self._read_kserve(answer, texts)

    async def apredict(self, texts: list[str]) -> list[dict[str, float]]:
        if not texts:
            return []
        if not self._meta_done:
            await self._read_metadata()
        n = self._batch_size()
        scored = await gather_all([self.post(texts[i:i + n]) for i in range(0, len(texts), n)])
        return [d for batch in scored for d in batch]

    def _batch_size(self) -> int:
        return min(self.max_batch, self._server_batch or self.max_batch)

    # -- metadata ----------------------------------------------------------------------------
    def _env_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    async def _read_metadata(self) -> None:
        """Once, before the first scan: TEI's ``/info`` or the model's v2 metadata. Network
        failures propagate (the scan would fail on the same server) and it is tried again."""
        client = self._clients.get()
        try:
            async with asyncio.timeout(self.request_s):
                with httpx_errors(self._failure):
                    resp = await client.get(self.meta_url, headers=self._headers())
        except TimeoutError:
            raise RemoteBackendTimeoutError(
                self.name, self.host, f"metadata: no answer within {self.request_s * 1000:.0f} "
                "ms (request_timeout_ms)") from None
        self._apply_metadata(resp)

    def _apply_metadata(self, resp: httpx.Response) -> None:
        needed = self.protocol == "kserve_v2" and not self.labels
        try:
            meta = self._json(resp)
        except RemoteBackendError as err:
            if needed:
                raise self.answer_error(f"no labels: model metadata unreadable ({err.problem}); "
                                        "set serving.labels") from None
            self.metadata = f"unavailable ({err.problem})"
            self._meta_done = resp.status_code < 500  # a 5xx (still loading?): ask again
            return
        if not isinstance(meta, dict):
            raise self.answer_error("metadata is not a JSON object")
        if self.protocol == "tei":
            self._tei_info(meta)
        else:
            self._kserve_metadata(meta)
        self.metadata = "read"
        self._meta_done = True

    def _tei_info(self, info: dict[str, Any]) -> None:
        model_type = info.get("model_type")
        if isinstance(model_type, dict) and "classifier" not in model_type:
            kind = next(iter(model_type), "unknown")
            raise self.answer_error(f"TEI serves {info.get('model_id')!r} as {kind}, not a "
                                    "classifier (/predict needs a sequence-classification model)")
        if isinstance(info.get("model_id"), str):
            self.server["model_id"] = info["model_id"]
            if self.model is None:
                self.model = info["model_id"]
        if isinstance(info.get("version"), str):
            self.server["tei_version"] = info["version"]
        if isinstance(info.get("model_sha"), str):
            self.version = info["model_sha"]
        cap = info.get("max_client_batch_size")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            self._server_batch = cap
            self.server["max_client_batch_size"] = cap
        clf = model_type.get("classifier") if isinstance(model_type, dict) else None
        id2label = clf.get("id2label") if isinstance(clf, dict) else None
        if isinstance(id2label, dict):
            labels = [str(v) for v in id2label.values()]
            self.server["labels"] = labels[:32]
            self._check_labels(labels)

    def _kserve_metadata(self, meta: dict[str, Any]) -> None:
        if isinstance(meta.get("platform"), str):
            self.server["platform"] = meta["platform"]
        versions = meta.get("versions")
        if isinstance(versions, list):
            self.server["versions"] = [str(v) for v in versions][:8]
            if self.version is None and len(versions) == 1:
                self.version = str(versions[0])
        outputs = meta.get("outputs")
        out = self._pick_output(outputs) if isinstance(outputs, list) and outputs else None
        params = out.get("parameters") if out else None
        if not self.labels and isinstance(params, dict) and isinstance(params.get("labels"), list):
            self.labels = [str(v) for v in params["labels"]]
        if not self.labels:
            raise self.answer_error("no labels: the model's metadata names none "
                                    "(outputs[].parameters.labels); set serving.labels")
        name, shape = (out.get("name"), out.get("shape")) if out else (None, None)
        if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) \
                and shape[1] > 0 and shape[1] != len(self.labels):
            raise self.answer_error(f"output {name!r} has {shape[1]} columns but "
                                    f"{len(self.labels)} labels are named")
        self._check_labels(self.labels)

    def _check_labels(self, labels: list[str]) -> None:
        known = self.label_map or DEFAULT_TEI_LABELS
        key = (lambda s: s) if self.label_map else str.lower
        unknown = sorted({lb for lb in labels if key(lb) not in known})
        if unknown:
            where = ("not in label_map (map them, null to ignore)" if self.label_map else
                     "not detoxify / toxic-bert labels: set label_map for this model")
            raise self.answer_error(f"labels {unknown[:8]} {where}")

    # -- answers -----------------------------------------------------------------------------
    def _read_tei(self, answer: Any, texts: list[str]) -> list[dict[str, float]]:
        if not isinstance(answer, list):
            raise self.answer_error("answer is not a list (want one list of {label, score} "
                                    "per input)")
        if len(answer) != len(texts):
            raise self.answer_error(f"{len(answer)} predictions for {len(texts)} inputs")
        out: list[dict[str, float]] = []
        for i, preds in enumerate(answer):
            if not isinstance(preds, list) or not preds or not all(
                    isinstance(p, dict) and isinstance(p.get("label"), str)
                    and _is_number(p.get("score")) for p in preds):
                raise self.answer_error(f"prediction {i} is not a list of {{label, score}} "
                                        "with numeric scores")
            out.append(self._scores(i, [p["label"] for p in preds],
                                    [float(p["score"]) for p in preds]))
        return out

    def _pick_output(self, outputs: list[Any]) -> dict[str, Any]:
        if self.output_name:
            hit = [o for o in outputs if isinstance(o, dict) and o.get("name") == self.output_name]
            if not hit:
                names = [o.get("name") for o in outputs if isinstance(o, dict)]
                raise self.answer_error(f"no output {self.output_name!r} (outputs: {names[:8]})")
            return hit[0]
        if len(outputs) != 1 or not isinstance(outputs[0], dict):
            names = [o.get("name") for o in outputs if isinstance(o, dict)]
            raise self.answer_error(f"{len(outputs)} outputs {names[:8]}: set "
                                    "serving.output_name")
        return outputs[0]

    def _read_kserve(self, answer: Any, texts: list[str]) -> list[dict[str, float]]:
        outputs = answer.get("outputs") if isinstance(answer, dict) else None
        if not isinstance(outputs, list) or not outputs:
            raise self.answer_error("answer has no 'outputs' list")
        out = self._pick_output(outputs)
        if not self.labels:
            raise self.answer_error("no labels: set serving.labels")
        n, k = len(texts), len(self.labels)
        name, shape, dtype = out.get("name"), out.get("shape"), out.get("datatype")
        if dtype not in _FLOAT_TYPES:
            raise self.answer_error(f"output {name!r} has datatype {dtype!r}, want one of "
                                    f"{list(_FLOAT_TYPES)}")
        if shape != [n, k] and not (k == 1 and shape == [n]):
            raise self.answer_error(f"output {name!r} has shape {shape}, want [{n}, {k}] "
                                    f"({n} inputs, {k} labels)")
        data = _flatten(out.get("data"))
        if len(data) != n * k or not all(_is_number(v) for v in data):
            raise self.answer_error(f"output {name!r}: want {n * k} finite numbers in 'data'")
        if isinstance(answer.get("model_version"), str):
            self.version = answer["model_version"]
        return [self._scores(i, self.labels, [float(v) for v in data[i * k:(i + 1) * k]])
                for i in range(n)]

    def _scores(self, i: int, labels: list[str], values: list[float]) -> dict[str, float]:
        """One input's labels and numbers as category -> score (the max where labels share a
        category)."""
        self._check_labels(labels)
        if self.activation == "sigmoid":
            values = [_sigmoid(v) for v in values]
        elif self.activation == "softmax" and self.protocol == "kserve_v2":
            values = _softmax(values)  # (TEI applied its own: raw_scores false)
        known = self.label_map or DEFAULT_TEI_LABELS
        d: dict[str, float] = {}
        for label, v in zip(labels, values, strict=True):
            if not 0.0 <= v <= 1.0:
                raise self.answer_error(
                    f"input {i}: score {v:.4g} of {label!r} is not in [0, 1] (logits? set "
                    "serving.activation to sigmoid or softmax)")
            cat = known[label if self.label_map else label.lower()]
            if cat is not None:
                d[cat] = max(d.get(cat, 0.0), v)
        if not d:
            raise self.answer_error(f"input {i}: no label maps onto ours (got {labels[:8]})")
        return d
