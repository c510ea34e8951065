"""Stateless workers: the schema is migrated once (``guardrail db upgrade``), not by each
worker; ``guardrail serve --workers 2`` serves one set of metrics across its processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from guardrail.cli import main


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    pdir = tmp_path / "policies"
    pdir.mkdir(exist_ok=True)
    (pdir / "default.yaml").write_text(
        "name: default\nscanners:\n  - type: denylist\n    name: banned\n"
        "    terms: [forbidden-codename]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GUARDRAIL_", "PROMETHEUS_"))}
    return {**env, "GUARDRAIL_DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
            "GUARDRAIL_POLICY_DIR": str(pdir), "GUARDRAIL_API_KEYS": "sk-w:acme",
            "GUARDRAIL_LOG_LEVEL": "warning", "HF_HUB_OFFLINE": "1", **extra}


def test_db_upgrade_is_a_step_of_its_own(tmp_path, monkeypatch, capsys):
    for k, v in _env(tmp_path).items():
        monkeypatch.setenv(k, v)
    assert main(["db", "current"]) == 1
    assert "schema: none" in capsys.readouterr().out
    from guardrail.app import create_app
    from guardrail.errors import ConfigError
    from guardrail.settings import Settings

    with pytest.raises(ConfigError, match="guardrail db upgrade"):
        create_app(Settings(auto_migrate=False))  # a worker does not migrate
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    create_app(Settings(auto_migrate=False))  # a current schema: starts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests_total(text: str) -> float:
    return sum(float(v) for v in re.findall(
        r'^guardrail_requests_total\{route="/v1/chat/completions",status="200"\} (\S+)$',
        text, re.M))


def test_two_workers_report_one_set_of_metrics(tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guardrail.cli", "serve", "--workers", "2", "--port",
             str(port)], env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=err)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(root + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("workers did not start: " + log.read_text()[-4000:])
        n = 40
        for i in range(n):  # a new connection each time: the kernel spreads them
            with httpx.Client() as c:
                r = c.post(root + "/v1/chat/completions",
                           headers={"Authorization": "Bearer sk-w"},
                           json={"model": "guardrail-scripted-1",
                                 "messages": [{"role": "user", "content": f"echo: hi {i}"}]})
                assert r.status_code == 200
        totals = set()
        for _ in range(6):  # whichever worker answers, it reports every worker's requests
            with httpx.Client() as c:
                totals.add(_requests_total(c.get(root + "/metrics").text))
        assert totals == {float(n)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
