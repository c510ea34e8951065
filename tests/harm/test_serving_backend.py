"""The ``serving`` harm backend (TEI and KServe v2) against a fake model server over real HTTP:
label mapping and scores, batching at max_batch, auth, timeouts, 5xx and malformed answers,
policy validation, and the real proxy (openai SDK): a block, a timeout recorded as a scanner
failure under the policy's fail mode, and /v1/guardrail/readyz describing what runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrail.errors import (
    PolicyError,
    RemoteAnswerError,
    RemoteBackendError,
    RemoteBackendTimeoutError,
    ScannerLoadError,
)
from guardrail.harm.backends import build_backend
from guardrail.harm.serving import ServingBackend
from guardrail.pipeline.types import RequestMeta, ScanContext
from guardrail.scanners.harm import HarmConfig, HarmScanner
from tests.harm.fake_serving import KSERVE_LABELS, TEI_SHA, build_fake_serving, sigmoid, softmax
from tests.harm.test_remote_e2e import _chat
from tests.harm.test_remote_e2e import _policy as remote_policy
from tests.harm.test_remote_policy import _load
from tests.mocks.servers import ThreadedServer, free_port

KEY = "sk-serving-test-token-0123456789"


class FakeServing:
    def __init__(self, server: ThreadedServer) -> None:
        self.server = server
        self.url = server.url

    @property
    def app(self) -> Any:
        return self.server.server.config.app

    @property
    def tei(self) -> dict[str, Any]:
        return self.app.state.tei  # type: ignore[no-any-return]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.app.state.requests  # type: ignore[no-any-return]

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    @property
    def host(self) -> str:
        return self.url.split("/")[2]


@pytest.fixture(scope="module")
def _serving_server() -> Iterator[FakeServing]:
    srv = ThreadedServer(build_fake_serving()).start()
    yield FakeServing(srv)
    srv.stop()


@pytest.fixture
def fake(_serving_server: FakeServing) -> FakeServing:
    _serving_server.requests.clear()
    _serving_server.tei.update(mode="ok", sleep_s=5.0, max_client_batch_size=32)
    return _serving_server


_made: list[HarmScanner] = []


@pytest.fixture(autouse=True)
async def _close_scanners():
    """Each test's scanners close their HTTP clients on the test's own event loop."""
    yield
    while _made:
        await _made.pop().aclose()


def _ctx(text: str) -> ScanContext:
    return ScanContext(text=text, meta=RequestMeta("r1", "/v1/chat/completions", "p", "v", "s"))


def _scanner(fake: FakeServing, serving: dict[str, Any] | None = None, **kw: Any) -> HarmScanner:
    s = HarmScanner(HarmConfig(type="harm", backend="serving", url=fake.url,
                               serving=serving, **kw), None)
    s.load()
    _made.append(s)
    return s


def _kserve(fake: FakeServing, model: str = "toxic", **kw: Any) -> HarmScanner:
    label_map = {"neutral": None, "insult": "harassment", "threat": "threat", "hate": "hate"}
    serving = {"protocol": "kserve_v2", **kw.pop("serving", {})}
    return _scanner(fake, serving, model=model, label_map=kw.pop("label_map", label_map), **kw)


def _cats(res: Any) -> dict[str, float]:
    return {f.category: f.score for f in res.findings}


# -- TEI ---------------------------------------------------------------------------------------

async def test_tei_default_map_scores_toxic_bert_labels_with_sigmoid(fake: FakeServing):
    s = _scanner(fake)
    res = await s.scan(_ctx("You are an IDIOT."))
    # raw logits, sigmoid here (toxic-bert is multi-label): toxic 3, insult 4, obscene 1
    assert _cats(res) == {"harassment": round(sigmoid(4.0), 6), "toxic": round(sigmoid(3.0), 6),
                          "profanity": round(sigmoid(1.0), 6)}
    (post,) = fake.posts()
    assert post["path"] == "/predict"
    assert post["body"] == {"inputs": [["You are an IDIOT."]], "truncate": True,
                            "raw_scores": True}
    assert [r["path"] for r in fake.requests] == ["/info", "/predict"]  # metadata once, first
    f = res.findings[0]
    assert f.evidence["backend"] == "serving" and f.evidence["model_version"] == TEI_SHA
    benign = await s.scan(_ctx("Tokyo is the capital of Japan."))
    assert benign.findings == ()
    assert [r["path"] for r in fake.requests].count("/info") == 1


async def test_tei_label_map_uses_tei_softmax_and_is_the_whole_truth(fake: FakeServing):
    label_map = {"toxic": "toxic", "severe_toxic": "toxic", "obscene": "profanity",
                 "threat": "threat", "insult": "harassment", "identity_hate": "hate"}
    s = _scanner(fake, label_map=label_map, threshold=0.01)
    res = await s.scan(_ctx("I will KILLYOU."))
    assert fake.posts()[0]["body"]["raw_scores"] is False  # TEI normalises (softmax)
    probs = dict(zip(["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"],
                     softmax([3.0, -4.0, -4.0, 5.0, -4.0, -4.0]), strict=True))
    assert _cats(res)["threat"] == round(probs["threat"], 6)
    assert _cats(res)["toxic"] == round(probs["toxic"], 6)

    partial = _scanner(fake, label_map={"toxic": "toxic", "threat": "threat"})
    with pytest.raises(RemoteAnswerError, match=r"labels \['identity_hate', 'insult', "
                       r"'obscene', 'severe_toxic'\] not in label_map"):
        await partial.scan(_ctx("hello"))


async def test_tei_model_with_other_labels_needs_a_label_map(fake: FakeServing):
    fake.tei["mode"] = "foreign"
    s = _scanner(fake)
    with pytest.raises(RemoteAnswerError) as err:
        await s.scan(_ctx("hello"))
    assert "['admiration', 'anger'] not detoxify / toxic-bert labels: set label_map" \
        in str(err.value)
    assert fake.posts() == []  # refused from /info's id2label, before scoring anything


async def test_tei_batches_split_at_max_batch_and_at_the_servers_cap(fake: FakeServing):
    sentences = [f"This is harmless sentence number {i} of the answer." for i in range(6)]
    sentences[4] = "And now you are an IDIOT, I say it plainly."
    text = " ".join(sentences)
    s = _scanner(fake, chunk_chars=60)
    res = await s.scan(_ctx(text))
    (post,) = fake.posts()
    assert len(post["body"]["inputs"]) == 6  # all chunks of one text in one call
    insult = next(f for f in res.findings if f.category == "harassment")
    assert insult.evidence["chunk"] == 4 and "IDIOT" in text[insult.span[0]:insult.span[1]]

    fake.requests.clear()
    s4 = _scanner(fake, chunk_chars=60, max_batch=4)
    res4 = await s4.scan(_ctx(text))
    assert sorted(len(p["body"]["inputs"]) for p in fake.posts()) == [2, 4]
    assert [(f.category, f.span, f.score) for f in res4.findings] == \
        [(f.category, f.span, f.score) for f in res.findings]

    fake.requests.clear()
    fake.tei["max_client_batch_size"] = 3  # TEI would refuse 16 with 413: lowered to 3
    s3 = _scanner(fake, chunk_chars=60)
    res3 = await s3.scan(_ctx(text))
    assert [len(p["body"]["inputs"]) for p in fake.posts()] == [3, 3]
    assert s3.info().details["request_batch"] == 3  # the scanner's max_batch stays 16
    assert [(f.category, f.span) for f in res3.findings] == \
        [(f.category, f.span) for f in res.findings]


async def test_tei_without_info_still_scores(fake: FakeServing):
    fake.tei["mode"] = "no-info"
    s = _scanner(fake)
    res = await s.scan(_ctx("You are an IDIOT."))
    assert "harassment" in _cats(res)
    d = s.info().details
    assert d["metadata"].startswith("unavailable (HTTP 404")
    assert s.info().model_version is None


async def test_tei_info_5xx_is_asked_again_on_the_next_scan(fake: FakeServing):
    fake.tei["mode"] = "info-503"
    s = _scanner(fake)
    await s.scan(_ctx("hello"))
    assert s.info().details["metadata"] == "unavailable (HTTP 503: model is loading)"
    fake.tei["mode"] = "ok"
    await s.scan(_ctx("hello"))
    assert s.info().model_version == TEI_SHA
    assert s.info().details["server"]["labels"][:2] == ["toxic", "severe_toxic"]
    assert [r["path"] for r in fake.requests] == ["/info", "/predict"] * 2


async def test_tei_embedding_model_is_refused_clearly(fake: FakeServing):
    fake.tei["mode"] = "embedding"
    s = _scanner(fake)
    with pytest.raises(RemoteAnswerError, match="serves 'unitary/toxic-bert' as embedding, "
                       "not a classifier"):
        await s.scan(_ctx("hello"))


@pytest.mark.parametrize(("mode", "error", "text"), [
    ("fail-500", RemoteBackendError, "HTTP 500: CUDA out of memory"),
    ("not-json", RemoteAnswerError, "not JSON (content-type text/html"),
    ("short", RemoteAnswerError, "0 predictions for 1 inputs"),
    ("nan-label", RemoteAnswerError, "prediction 0 is not a list of {label, score}"),
])
async def test_tei_5xx_and_malformed_answers_are_our_errors(
        fake: FakeServing, mode: str, error: type[Exception], text: str):
    fake.tei["mode"] = mode
    s = _scanner(fake)
    with pytest.raises(error) as err:
        await s.scan(_ctx("hello"))
    assert text in str(err.value)
    assert str(err.value).startswith(f"serving at {fake.host}: ")


async def test_tei_timeout_is_bounded(fake: FakeServing):
    fake.tei.update(mode="slow", sleep_s=1.0)
    s = _scanner(fake, request_timeout_ms=300)
    start = time.perf_counter()
    with pytest.raises(RemoteBackendTimeoutError, match="request_timeout_ms"):
        await s.scan(_ctx("hello"))
    assert time.perf_counter() - start < 2.0


# -- KServe v2 -----------------------------------------------------------------------------------

async def test_kserve_maps_probabilities_with_labels_from_metadata(fake: FakeServing):
    s = _kserve(fake)
    res = await s.scan(_ctx("I will KILLYOU."))
    assert _cats(res) == {"threat": round(sigmoid(5.0), 6)}
    meta, post = fake.requests
    assert meta["method"] == "GET" and meta["path"] == "/v2/models/toxic"
    assert post["path"] == "/v2/models/toxic/infer"
    assert post["body"] == {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                        "data": ["I will KILLYOU."]}]}
    info = s.info()
    assert info.model == "toxic" and info.model_version == "3"
    assert info.details["labels"] == KSERVE_LABELS
    assert info.details["server"]["platform"] == "pytorch_torchscript"


async def test_kserve_logits_with_configured_labels_and_batches(fake: FakeServing):
    s = _kserve(fake, "logits", chunk_chars=60, max_batch=2,
                serving={"labels": KSERVE_LABELS, "activation": "sigmoid",
                         "output_name": "logits"})
    text = " ".join(["A calm sentence about the weather in Tokyo today."] * 4
                    + ["You IDIOT, that is what you are, nothing else now."])
    res = await s.scan(_ctx(text))
    posts = fake.posts()
    assert [p["body"]["inputs"][0]["shape"] for p in posts] == [[2], [2], [1]]
    assert all(p["body"]["outputs"] == [{"name": "logits"}] for p in posts)
    assert _cats(res) == {"harassment": round(sigmoid(4.0), 6)}
    assert res.findings[0].evidence["chunk"] == 4

    sm = _kserve(fake, "logits", serving={"labels": KSERVE_LABELS, "activation": "softmax"})
    res = await sm.scan(_ctx("You IDIOT."))
    assert _cats(res)["harassment"] == round(softmax([-2.0, 4.0, -4.0, -4.0])[1], 6)

    raw = _kserve(fake, "logits", serving={"labels": KSERVE_LABELS})  # activation none
    with pytest.raises(RemoteAnswerError, match=r"not in \[0, 1\] \(logits\? set "
                       "serving.activation"):
        await raw.scan(_ctx("hello"))


async def test_kserve_nested_data_is_read(fake: FakeServing):
    res = await _kserve(fake, "nested").scan(_ctx("You IDIOT."))
    assert _cats(res) == {"harassment": round(sigmoid(4.0), 6)}


@pytest.mark.parametrize(("model", "serving", "error", "text"), [
    ("fail-500", {"labels": KSERVE_LABELS}, RemoteBackendError, "HTTP 500: model crashed"),
    ("wrong-shape", {}, RemoteAnswerError, "has shape [1, 3], want [1, 4]"),
    ("ints", {}, RemoteAnswerError, "datatype 'INT64'"),
    ("two-outputs", {}, RemoteAnswerError, "2 outputs ['probs', 'embedding']: set "
     "serving.output_name"),
    ("logits", {}, RemoteAnswerError, "no labels: the model's metadata names none"),
    ("missing", {}, RemoteAnswerError, "no labels: model metadata unreadable (HTTP 404"),
    ("toxic", {"labels": ["neutral", "insult", "threat"]}, RemoteAnswerError,
     "has 4 columns but 3 labels are named"),
])
async def test_kserve_errors_are_clear(fake: FakeServing, model: str, serving: dict[str, Any],
                                       error: type[Exception], text: str):
    s = _kserve(fake, model, serving=serving)
    with pytest.raises(error) as err:
        await s.scan(_ctx("hello"))
    assert text in str(err.value)


async def test_kserve_model_version_in_path(fake: FakeServing):
    s = _kserve(fake, serving={"model_version": "3", "labels": KSERVE_LABELS})
    await s.scan(_ctx("hello"))
    assert [r["path"] for r in fake.requests] == ["/v2/models/toxic/versions/3",
                                                   "/v2/models/toxic/versions/3/infer"]


# -- auth, describe, load ------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["tei", "kserve_v2"])
async def test_bearer_token_from_env_is_sent_and_never_described(
        fake: FakeServing, monkeypatch: pytest.MonkeyPatch, protocol: str):
    monkeypatch.setenv("TEST_SERVING_TOKEN", KEY)
    s = (_scanner(fake, api_key_env="TEST_SERVING_TOKEN") if protocol == "tei"
         else _kserve(fake, api_key_env="TEST_SERVING_TOKEN"))
    await s.scan(_ctx("hello"))
    assert len(fake.requests) == 2
    assert all(r["headers"]["authorization"] == f"Bearer {KEY}" for r in fake.requests)
    info = s.info().as_dict()
    d = info["details"]
    assert d["protocol"] == protocol and d["url_host"] == fake.host
    assert d["api_key_env"] == "TEST_SERVING_TOKEN"
    assert KEY not in repr(info)


def test_load_needs_no_network_and_probe_reads_metadata(fake: FakeServing):
    down = f"http://127.0.0.1:{free_port()}"
    s = HarmScanner(HarmConfig(type="harm", backend="serving", url=down), None)
    s.load()  # the model server may start after the proxy
    with pytest.raises(ScannerLoadError, match="probe failed.*unreachable"):
        HarmScanner(HarmConfig(type="harm", backend="serving", url=down, probe=True),
                    None).load()
    fake.tei["mode"] = "foreign"
    with pytest.raises(ScannerLoadError, match="probe failed.*set label_map"):
        HarmScanner(HarmConfig(type="harm", backend="serving", url=fake.url, probe=True),
                    None).load()
    fake.tei["mode"] = "ok"
    ok = HarmScanner(HarmConfig(type="harm", backend="serving", url=fake.url, probe=True), None)
    ok.load()
    assert ok.info().model_version == TEI_SHA and ok.info().model == "unitary/toxic-bert"
    assert [r["path"] for r in fake.requests][-2:] == ["/info", "/predict"]


def test_registry_and_urls():
    b = build_backend("serving", None, url="http://tei:8080/")
    assert isinstance(b, ServingBackend) and b.url == "http://tei:8080/predict"
    k = build_backend("serving", "m", url="http://u:1/v2", protocol="kserve_v2")
    assert isinstance(k, ServingBackend)
    assert k.url == "http://u:1/v2/models/m/infer" and k.meta_url == "http://u:1/v2/models/m"
    assert k.details()["url_host"] == "u:1" and k.details()["endpoint"] == "/v2/models/m/infer"


# -- policy validation ---------------------------------------------------------------------------

def test_serving_policies_validate(tmp_path: Path):
    cfg = _load(tmp_path, """\
        backend: serving
        url: http://tei:8080
        api_key_env: TEI_TOKEN
        request_timeout_ms: 500
        """).scanners[0]
    assert cfg.backend == "serving" and cfg.serving is None  # tei, default map
    k = _load(tmp_path, """\
        backend: serving
        url: http://kserve.models.svc:8080
        model: harm-classifier
        serving: {protocol: kserve_v2, labels: [ok, insult], activation: softmax}
        label_map: {ok: null, insult: harassment}
        max_batch: 32
        """).scanners[0]
    assert k.serving.protocol == "kserve_v2" and k.serving.labels == ["ok", "insult"]


@pytest.mark.parametrize(("body", "message"), [
    ("backend: serving\n", "needs url"),
    ("backend: serving\nurl: http://h\nserving: {protocol: kserve_v2}\n"
     "label_map: {a: hate}\n", "kserve_v2 needs model"),
    ("backend: serving\nurl: http://h\nmodel: m\nserving: {protocol: kserve_v2}\n",
     "kserve_v2 needs label_map"),
    ("backend: serving\nurl: http://h\nserving: {labels: [a]}\n", "only for kserve_v2"),
    ("backend: serving\nurl: http://h\nlabel_map: {a: null}\n", "maps no label"),
    ("backend: serving\nurl: http://h\nmodel: m\nserving: {protocol: kserve_v2, labels: [a, b]}"
     "\nlabel_map: {a: hate}\n", "serving.labels not in label_map: ['b']"),
    ("backend: serving\nurl: http://h\nserving: {protocol: grpc}\n", "protocol"),
    ("backend: serving\nurl: https://u:p@h\n", "must not carry credentials"),
    ("backend: embedded\nserving: {protocol: tei}\n", "serving: only for backend serving"),
    ("backend: serving\nurl: http://h\nlabel_map: {a: nonsense}\n", "unknown harm categories"),
])
def test_bad_serving_policies_are_explained(tmp_path: Path, body: str, message: str):
    with pytest.raises(PolicyError) as err:
        _load(tmp_path, body)
    assert message in str(err.value)


def test_a_token_pasted_into_api_key_env_is_refused_and_not_echoed(tmp_path: Path):
    with pytest.raises(PolicyError) as err:
        _load(tmp_path, f"backend: serving\nurl: http://h\napi_key_env: {KEY}\n")
    assert "NAME of an environment variable" in str(err.value) and KEY not in str(err.value)


# -- the real proxy -------------------------------------------------------------------------------

def _policy(url: str, *, mode: str = "fail_closed", extra: str = "") -> str:
    return remote_policy(url, backend="serving", model="unitary/toxic-bert", mode=mode,
                         extra=extra)


@pytest.fixture(autouse=True)
def _remote_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_TEST_REMOTE_KEY", KEY)  # the policy's api_key_env


def test_proxy_blocks_on_tei_scores_and_readyz_describes_it(make_server, fake: FakeServing):
    # probe: the metadata is read at start-up, so /readyz (what loaded) names the version
    server = make_server(_policy(fake.url, extra="    probe: true"))
    resp = _chat(server, "I will KILLYOU tonight.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == "block" and resp.choices[0].finish_reason == "content_filter"
    inc = server.store.get(g["incident_ids"][0])
    assert inc["backend"] == "serving" and inc["category"] == "threat"
    assert inc["model"] == "unitary/toxic-bert" and inc["model_version"] == TEI_SHA
    assert fake.posts()[-1]["headers"]["authorization"] == f"Bearer {KEY}"
    assert _chat(server, "Tokyo is the capital of Japan.").model_extra["guardrail"][
        "decision"] == "allow"

    ready = httpx.get(server.root_url + "/v1/guardrail/readyz",
                      headers={"Authorization": f"Bearer {server.admin_key}"}).json()
    (harm,) = ready["policies"]["default"]["scanners"]
    assert harm["backend"] == "serving" and harm["model"] == "unitary/toxic-bert"
    assert harm["model_version"] == TEI_SHA
    d = harm["details"]
    assert d["protocol"] == "tei" and d["url_host"] == fake.host
    assert d["server"]["tei_version"] == "1.7.1"
    assert KEY not in repr(ready)


@pytest.mark.parametrize(("mode", "decision"), [("fail_closed", "block"), ("fail_open", "flag")])
def test_proxy_timeout_is_a_scanner_failure_under_the_fail_mode(
        make_server, fake: FakeServing, mode: str, decision: str):
    fake.tei.update(mode="slow", sleep_s=1.0)
    server = make_server(_policy(fake.url, mode=mode, extra="    request_timeout_ms: 300"))
    resp = _chat(server, "A perfectly benign answer.")
    g = resp.model_extra["guardrail"]
    assert g["decision"] == decision
    inc = server.store.get(g["incident_ids"][0])
    assert inc["kind"] == "scanner_failure" and inc["backend"] == "serving"
    assert inc["evidence"]["fail_mode"] == mode
    assert "RemoteBackendTimeoutError" in inc["evidence"]["message"]
    assert "request_timeout_ms" in inc["evidence"]["message"]
    assert KEY not in repr(inc)
    if mode == "fail_open":
        assert resp.choices[0].message.content == "A perfectly benign answer."
    else:
        assert resp.choices[0].finish_reason == "content_filter"
