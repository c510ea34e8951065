"""``guardrail users`` and ``guardrail keys``: secrets on the last line, shown once; store keys
work on the proxy like configured ones."""

from __future__ import annotations

import io

import httpx
import openai
import pytest

from guardrail.cli import main
from tests.people.helpers import HOLD_POLICY, PASSWORD, people, sign_in


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run the CLI with ``stdin``; returns (exit code, stdout lines, stderr)."""

    def run(*argv: str, stdin: str = "") -> tuple[int, list[str], str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out.splitlines(), err

    return run


@pytest.fixture
def srv(make_server, monkeypatch, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text(HOLD_POLICY.replace("name: default", "name: strict")
                      .replace("action: hold", "action: block"), encoding="utf-8")
    s = make_server(HOLD_POLICY, policy_files=[strict])
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", s.settings.database_url)
    monkeypatch.setenv("GUARDRAIL_POLICY_DIR", str(s.settings.policy_dir))
    monkeypatch.setenv("GUARDRAIL_POLICY_FILES", str(strict))
    return s


def _chat(srv, key: str) -> httpx.Response:
    return httpx.post(srv.base_url + "/chat/completions",
                      headers={"Authorization": f"Bearer {key}"},
                      json={"model": "echo", "messages": [
                          {"role": "user", "content": "About forbidden-codename: yes."}]})


def test_users_lifecycle(srv, cli):
    code, out, _ = cli("users", "add", "山田花子", "--role", "reviewer", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert code == 0 and out == ["added 山田花子 as reviewer"]
    assert cli("users", "add", "bot", "--role", "auditor")[1] == [
        "added bot as auditor (no password: API token only)"]
    code, out, _ = cli("users", "token", "山田花子")
    token = out[-1]
    assert code == 0 and token.startswith("gr_pt_") and token not in "\n".join(out[:-1])
    h = {"Authorization": f"Bearer {token}"}
    assert httpx.get(srv.root_url + "/v1/guardrail/incidents", headers=h).status_code == 200
    code, out, _ = cli("users", "list")
    assert [line.split("\t")[:3] for line in out] == [["山田花子", "reviewer", "active"],
                                                      ["bot", "auditor", "active"]]
    with sign_in(srv, "山田花子"):
        pass
    code, out, _ = cli("users", "reset", "山田花子", "--password-stdin",
                       stdin="another long passphrase\n")
    assert code == 0 and people(srv).authenticate("山田花子", PASSWORD) is None
    with sign_in(srv, "山田花子", "another long passphrase"):
        pass
    assert cli("users", "disable", "山田花子")[0] == 0
    assert httpx.get(srv.root_url + "/v1/guardrail/incidents", headers=h).status_code == 401
    assert "disabled" in cli("users", "list")[1][0]
    assert cli("users", "enable", "山田花子")[0] == 0


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    pytest.param(("users", "add", "x", "--role", "reviewer", "--password-stdin"), "short\n",
                 "at least 12", id="short-password"),
    pytest.param(("users", "token", "nobody"), "", "No person named", id="unknown-person"),
    pytest.param(("keys", "add", "--tenant", "acme", "--policy", "nope"), "", "no policy named",
                 id="unknown-policy"),
    pytest.param(("keys", "revoke", "key_000000000000"), "", "No stored client key",
                 id="unknown-key"),
])
def test_errors_name_the_problem(srv, cli, argv, stdin, message):
    code, out, err = cli(*argv, stdin=stdin)
    assert code == 2 and message in err


def test_store_keys_carry_tenant_and_policy(srv, cli):
    code, out, _ = cli("keys", "add", "--tenant", "acme")
    key = out[-1]
    assert code == 0 and key.startswith("sk-gr-") and key not in "\n".join(out[:-1])
    code, out, _ = cli("keys", "add", "--tenant", "globex", "--policy", "strict")
    strict_key = out[-1]
    r = openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "About forbidden-codename: yes."}])
    g = r.model_extra["guardrail"]
    assert g["decision"] == "hold"
    rec = srv.store.get(g["incident_ids"][0])
    from guardrail.settings import key_id

    assert (rec["tenant"], rec["api_key_id"], rec["policy_name"]) == ("acme", key_id(key),
                                                                     "default")
    blocked = _chat(srv, strict_key).json()["guardrail"]
    assert blocked["decision"] == "block"
    assert srv.store.get(blocked["incident_ids"][0])["tenant"] == "globex"
    assert _chat(srv, srv.client_key).status_code == 200  # GUARDRAIL_API_KEYS still work
    listed = cli("keys", "list")[1]
    assert len(listed) == 2 and all("\tactive\t" in line for line in listed)
    assert cli("keys", "revoke", key_id(key))[0] == 0
    assert _chat(srv, key).status_code == 401
    assert _chat(srv, strict_key).status_code == 200


def test_a_store_key_ends_dev_mode(make_server, monkeypatch, cli):
    srv = make_server(HOLD_POLICY, api_keys=[])
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", srv.settings.database_url)
    assert _chat(srv, "anything-goes").status_code == 200  # dev mode: any key
    key = cli("keys", "add", "--tenant", "acme")[1][-1]
    assert _chat(srv, "anything-goes").status_code == 401
    assert _chat(srv, key).status_code == 200
    r = httpx.post(srv.base_url + "/chat/completions", json={"model": "echo", "messages": []})
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"


def test_serve_refuses_a_public_bind_only_without_any_key(monkeypatch, tmp_path, cli):
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", f"sqlite:///{tmp_path}/g.db")
    monkeypatch.delenv("GUARDRAIL_API_KEYS", raising=False)
    code, _, err = cli("serve", "--host", "0.0.0.0")
    assert code == 2 and "keys add" in err
    cli("keys", "add", "--tenant", "acme")
    from guardrail import cli as cli_module

    assert cli_module._store_has_keys()
