"""deploy/prometheus checked by Prometheus' own ``promtool``: the alert rules load, the scrape
config (with its rule file) is valid, and ``alerts_test.yml``'s unit tests pass: for each alert,
series that fire it (labels and rendered annotations compared) and series that must not.

``promtool`` is found on ``PATH`` or at ``GUARDRAIL_PROMTOOL``; CI fetches it from Debian's
``prometheus`` package (``.ci/run``). Without it these tests skip, unless
``GUARDRAIL_REQUIRE_SERVICES=1``, where they fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services import unavailable

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = os.environ.get("GUARDRAIL_PROMTOOL") or shutil.which("promtool")
    if not found or not Path(found).is_file():
        unavailable("promtool", FileNotFoundError("promtool is not on PATH (GUARDRAIL_PROMTOOL)"))
    return str(found)


def _run(promtool: str, *args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_alert_rules_load(promtool: str):
    got = _run(promtool, "check", "rules", "alerts.yml")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS" in got.stdout


def test_scrape_config_is_valid(promtool: str, tmp_path: Path):
    # the compose file mounts this folder at /etc/prometheus; point the rule file at the copy
    config = (PROM / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/alerts.yml" in config
    shutil.copy(PROM / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml")),
        encoding="utf-8")
    got = _run(promtool, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr


def test_alert_unit_tests_pass(promtool: str):
    got = _run(promtool, "test", "rules", "alerts_test.yml")
    assert got.returncode == 0, got.stdout + got.stderr


def test_alert_unit_tests_catch_a_broken_rule(promtool: str, tmp_path: Path):
    """The unit tests are not vacuous: an error-rate alert whose threshold is raised tenfold
    no longer fires where the tests expect it."""
    rules = (PROM / "alerts.yml").read_text(encoding="utf-8")
    assert rules.count("> 0.05\n") >= 1
    (tmp_path / "alerts.yml").write_text(rules.replace("> 0.05\n", "> 0.5\n", 1),
                                         encoding="utf-8")
    shutil.copy(PROM / "alerts_test.yml", tmp_path / "alerts_test.yml")
    got = _run(promtool, "test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert got.returncode != 0
    assert "GuardrailHighErrorRate" in got.stdout + got.stderr


def test_every_alert_has_a_unit_test():
    import yaml

    alerts = {r["alert"] for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load(
        (PROM / "alerts_test.yml").read_text())["tests"] for t in case["alert_rule_test"]}
    assert alerts - tested == set()
