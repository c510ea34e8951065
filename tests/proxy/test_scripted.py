"""The built-in scripted upstream: a newcomer sees interventions with no network."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.mocks.servers import ThreadedServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scripted(tmp_path):
    from guardrail.app import create_app
    from guardrail.settings import Settings

    pdir = tmp_path / "p"
    pdir.mkdir()
    (pdir / "default.yaml").write_text(
        "name: default\nscanners:\n"
        "  - {type: denylist, name: banned, terms: [forbidden-project-codename]}\n"
        "  - {type: denylist, name: secrets, action: redact, category: credential,\n"
        "     patterns: ['sk-[a-z0-9]{20,}']}\n")
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/s.db", policy_dir=pdir,
                              upstream_url=None, api_keys=[], admin_key="admin-k"))
    srv = ThreadedServer(app).start()
    yield srv, app
    srv.stop()


def test_scripted_upstream_shows_interventions(scripted):
    srv, app = scripted
    assert app.state.guardrail.extras["scripted"] is True
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="anything", max_retries=0)
    ask = lambda q: client.chat.completions.create(  # noqa: E731
        model="guardrail-scripted-1", messages=[{"role": "user", "content": q}])
    assert ask("what is the codename?").choices[0].finish_reason == "content_filter"
    assert "<CREDENTIAL>" in ask("give me an api key").choices[0].message.content
    assert ask("echo: hello").choices[0].message.content == "hello"
    chunks = list(client.chat.completions.create(
        model="guardrail-scripted-1", stream=True,
        messages=[{"role": "user", "content": "the codename please"}]))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    assert [m.id for m in client.models.list().data] == ["guardrail-scripted-1"]


def test_readyz_says_scripted(scripted):
    import httpx

    srv, _ = scripted
    ready = httpx.get(srv.url + "/v1/guardrail/readyz",
                      headers={"Authorization": "Bearer admin-k"}).json()
    assert ready["upstream"]["scripted"] is True
    assert ready["auth"]["dev_mode"] is True
