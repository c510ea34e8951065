"""Start-up: every policy names an inventory system; re-assessment due when a policy changes
or a new answering model is seen, visible in the admin readyz and in /metrics."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from guardrail.app import create_app
from guardrail.errors import ConfigError, PolicyError
from guardrail.governance.setup import observe_model

ADMIN = "admin-key-governance"


def _app(settings):
    return create_app(settings)


def _ready(client: TestClient) -> dict:
    r = client.get("/v1/guardrail/readyz", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200, r.text
    return r.json()["ready_governance"]


def _due_metric(client: TestClient, system: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'guardrail_reassessment_due{{system="{system}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_policy_naming_unknown_system_fails_startup(gov_dir):
    gov_dir.system(id="billing", policies=[])  # an inventory without `chat`
    with pytest.raises(PolicyError) as err:
        _app(gov_dir.settings())
    assert isinstance(err.value, ConfigError)
    assert err.value.file == str(gov_dir.root / "default.yaml")
    field, problem = err.value.problems[0]
    assert field == "system" and "'chat'" in problem and "billing" in problem


def test_bad_inventory_file_fails_startup(gov_dir):
    path = gov_dir.system(owner={"name": "Hanako Sato"})
    with pytest.raises(PolicyError) as err:
        _app(gov_dir.settings())
    assert err.value.file == str(path) and dict(err.value.problems).get("owner.title")


def test_no_inventory_is_a_placeholder_with_a_warning(gov_dir, caplog):
    caplog.set_level(logging.WARNING, logger="guardrail.governance")
    app = _app(gov_dir.settings(admin_key=ADMIN))
    gov = app.state.guardrail.extras["governance"]
    assert not gov.inventory.found
    assert set(gov.inventory.systems) == {"chat", "default"}
    assert all(s.placeholder for s in gov.inventory.systems.values())
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "inventory_placeholder" in warned and "PLACEHOLDER" in warned
    with TestClient(app) as c:
        ready = _ready(c)
        assert ready["inventory"]["found"] is False
        assert ready["systems"]["chat"]["reasons"][0]["code"] == "no_approved_assessment"


def test_current_assessment_is_not_due(full_gov_dir):
    app = _app(full_gov_dir.settings(admin_key=ADMIN))
    with TestClient(app) as c:
        ready = _ready(c)
        assert ready["reassessment_due"] == []
        assert ready["systems"]["chat"]["assessment"] == "chat-2025"
        assert _due_metric(c, "chat") == 0.0


def test_policy_change_marks_assessment_due(full_gov_dir):
    old = full_gov_dir.version()
    full_gov_dir.policy(full_gov_dir.root.joinpath("default.yaml").read_text()
                        .replace("forbidden-codename", "forbidden-codename2"))
    new = full_gov_dir.version()
    assert new != old
    app = _app(full_gov_dir.settings(admin_key=ADMIN))
    with TestClient(app) as c:
        ready = _ready(c)
        assert ready["reassessment_due"] == ["chat"]
        (reason,) = ready["systems"]["chat"]["reasons"]
        assert reason["code"] == "policy_changed"
        assert (reason["assessed_version"], reason["current_version"]) == (old, new)
        assert _due_metric(c, "chat") == 1.0


def test_new_answering_model_marks_assessment_due(full_gov_dir):
    app = _app(full_gov_dir.settings(admin_key=ADMIN))
    state = app.state.guardrail
    assert state.extras["observe_model"] is observe_model
    with TestClient(app) as c:
        observe_model(state, "chat", "echo-2025-01-01")  # covered by echo*
        assert _ready(c)["reassessment_due"] == []
        observe_model(state, "chat", "gpt-9")
        ready = _ready(c)
        assert ready["reassessment_due"] == ["chat"]
        (reason,) = ready["systems"]["chat"]["reasons"]
        assert reason["code"] == "model_not_assessed" and reason["model"] == "gpt-9"
        assert _due_metric(c, "chat") == 1.0
        state.extras["governance"].seen_store.flush()
        rows = state.extras["governance"].seen_store.rows("chat")
        assert {r["model"] for r in rows} == {"echo-2025-01-01", "gpt-9"}
    # a new process reads what was seen from the table: still due
    app2 = _app(full_gov_dir.settings(admin_key=ADMIN))
    assert app2.state.guardrail.extras["governance"].due() == ["chat"]


def test_observe_model_writes_each_pair_once_per_process(full_gov_dir, monkeypatch):
    app = _app(full_gov_dir.settings())
    gov = app.state.guardrail.extras["governance"]
    calls = []
    real = gov.seen_store._write
    monkeypatch.setattr(gov.seen_store, "_write", lambda *a: (calls.append(a), real(*a)))
    for _ in range(50):
        observe_model(app.state.guardrail, "chat", "gpt-9")
        observe_model(app.state.guardrail, "chat", None)  # no model: nothing
    gov.seen_store.flush()
    assert len(calls) == 1
    (row,) = gov.seen_store.rows("chat")
    assert row["count"] == 1


def test_a_scrape_reloads_what_other_processes_saw(full_gov_dir):
    from guardrail.governance.models_seen import ModelsSeen

    app = _app(full_gov_dir.settings(admin_key=ADMIN))
    gov = app.state.guardrail.extras["governance"]
    other = ModelsSeen(app.state.guardrail.store.engine)  # another worker process
    other.observe("chat", "gpt-9")
    other.flush()
    other.close()
    with TestClient(app) as c:
        assert _ready(c)["reassessment_due"] == []  # not read yet
        gov.refreshed_at = 0.0  # stale: the next scrape reloads in the background
        c.get("/metrics")
        gov.seen_store.flush()
        assert _ready(c)["reassessment_due"] == ["chat"]
        assert _due_metric(c, "chat") == 1.0


def test_the_proxy_reports_the_answering_model(make_server, full_gov_dir):
    """Through the proxy (JSON and stream): the upstream's model is recorded for the policy's
    system. The fake upstream answers as the model asked for: ``echo`` is assessed (``echo*``),
    ``other-model`` is not."""
    import openai

    srv = make_server(full_gov_dir.root.joinpath("default.yaml").read_text(),
                      policy_dir=full_gov_dir.root)
    client = openai.OpenAI(base_url=srv.base_url, api_key=srv.client_key, max_retries=0)
    gov = srv.state.extras["governance"]
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    for _ in client.chat.completions.create(
            model="other-model", stream=True, messages=[{"role": "user", "content": "hi"}]):
        pass
    gov.seen_store.flush()
    seen = {r["model"] for r in gov.seen_store.rows("chat")}
    assert seen == {"echo", "other-model"}, seen
    assert gov.due() == ["chat"]
    reasons = gov.status["chat"].reasons
    assert [r.model for r in reasons] == ["other-model"]
