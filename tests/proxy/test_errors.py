"""Every error row: OpenAI-style body, right status, nothing lost."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.mocks.servers import free_port

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def server(make_server):
    return make_server(None, max_body_bytes=4096)


def post(server, json=None, content=None, key="default", headers=None):
    h = {"Authorization": f"Bearer {server.client_key if key == 'default' else key}"} if key else {}
    h.update(headers or {})
    return httpx.post(server.base_url + "/chat/completions", json=json, content=content,
                      headers=h, timeout=30)


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    return err


@pytest.mark.parametrize(("body", "code", "param"), [
    pytest.param(b"{not json", "invalid_json", None, id="malformed-json"),
    pytest.param(b"[1, 2]", "invalid_json", None, id="not-an-object"),
    pytest.param(b'{"messages": [{"role": "user", "content": "x"}]}', "missing_required_parameter",
                 "model", id="missing-model"),
    pytest.param(b'{"model": "echo", "messages": "hi"}', "invalid_type", "messages",
                 id="messages-not-list"),
    pytest.param(b'{"model": "echo", "messages": []}', "invalid_value", "messages",
                 id="empty-messages"),
    pytest.param(b'{"model": "echo", "messages": [{"role": "user"}], "stream": "yes"}',
                 "invalid_type", "stream", id="stream-not-bool"),
    pytest.param(b'{"model": "echo", "messages": [{"role": "user"}], "n": 0}',
                 "invalid_value", "n", id="bad-n"),
])
def test_bad_requests_are_400(server, body, code, param):
    err = assert_openai_error(post(server, content=body,
                                   headers={"content-type": "application/json"}), 400, code)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


@pytest.mark.parametrize(("key", "code"), [
    pytest.param(None, "missing_api_key", id="missing"),
    pytest.param("sk-wrong", "invalid_api_key", id="wrong"),
])
def test_auth_errors_are_401(server, key, code):
    assert_openai_error(post(server, json=CHAT, key=key), 401, code)


def test_sdk_sees_authentication_error(server):
    client = openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**CHAT)


def test_body_too_large_is_413(server):
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert_openai_error(post(server, json=big), 413, "request_too_large")


def test_upstream_unreachable_is_502(make_server):
    srv = make_server(None, upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    assert_openai_error(post(srv, json=CHAT), 502, "upstream_unreachable")
    stream = post(srv, json={**CHAT, "stream": True})
    assert_openai_error(stream, 502, "upstream_unreachable")


def test_upstream_timeout_is_504(make_server):
    srv = make_server(None, upstream_read_timeout_s=0.3)
    assert_openai_error(post(srv, json={**CHAT, "model": "slow", "fake_sleep": 2}), 504,
                        "upstream_timeout")


def test_upstream_4xx_passes_through_with_body(server):
    resp = post(server, json={**CHAT, "model": "fail-429"})
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "rate_limit_exceeded"
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**{**CHAT, "model": "fail-429"})


def test_upstream_5xx_passes_through(server):
    assert post(server, json={**CHAT, "model": "fail-500"}).status_code == 500


def test_upstream_non_json_is_502(server):
    assert_openai_error(post(server, json={**CHAT, "model": "not-json"}), 502,
                        "upstream_bad_response")


def test_mid_stream_disconnect_ends_with_error_event(server):
    client = openai.OpenAI(base_url=server.base_url, api_key=server.client_key, max_retries=0,
                           timeout=20)
    with pytest.raises(openai.APIError) as info:
        for _ in client.chat.completions.create(
                model="disconnect", stream=True,
                messages=[{"role": "user", "content": "a fairly long reply " * 20}]):
            pass
    assert "upstream stream failed" in str(info.value)


def test_unknown_route_is_openai_404(server):
    resp = httpx.get(server.root_url + "/v1/nope")
    assert_openai_error(resp, 404, "not_found")
