"""deploy/ checked without Docker: the compose file's services, dependencies and environment;
Prometheus' scrape config; every alert rule and every dashboard query parsed as PromQL
(promql-parser, a real parser with PromQL's type checks) and each metric, label matcher and
``by``/``on`` label checked against what a running app exposes at ``/metrics``; the Grafana
dashboard against a JSON Schema of the fields Grafana needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "guardrail.json"
METRIC = re.compile(r"\bguardrail_[a-z0-9_]+\b")
# series Prometheus makes itself, and the labels it attaches to every scraped series
PROMETHEUS_OWN = {"up": set()}
TARGET_LABELS = {"job", "instance"}
# Grafana's built-in variables, as Prometheus would receive them
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def _yaml(*parts: str) -> Any:
    return yaml.safe_load((DEPLOY.joinpath(*parts)).read_text(encoding="utf-8"))


def _alert_rules() -> list[dict[str, Any]]:
    return [r for g in _yaml("prometheus", "alerts.yml")["groups"] for r in g["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _panel_exprs() -> list[tuple[str, str]]:
    out = []
    for p in _dashboard()["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            out.append((p["title"], expr))
    return out


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Series name -> label names, read from a real app's ``/metrics`` (each labelled metric is
    given one child first, so that its series and labels appear; the governance gauges yield
    their own)."""
    from guardrail.app import create_app
    from guardrail.settings import Settings

    tmp = tmp_path_factory.mktemp("deploy-metrics")
    pdir = tmp / "policies"
    pdir.mkdir()
    (pdir / "default.yaml").write_text("name: default\nscanners: []\n", encoding="utf-8")
    app = create_app(Settings(database_url=f"sqlite:///{tmp}/guardrail.db", policy_dir=pdir,
                              admin_key="admin-deploy-test", api_keys=["sk-deploy-test"]))
    with TestClient(app) as client:
        for metric in vars(app.state.guardrail.metrics).values():
            if isinstance(metric, MetricWrapperBase) and metric._labelnames:  # declared labels
                metric.labels(*["x"] * len(metric._labelnames))
        resp = client.get("/metrics")
    assert resp.status_code == 200
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    assert "guardrail_overhead_seconds_bucket" in series  # a histogram's series, with le
    assert "le" in series["guardrail_overhead_seconds_bucket"]
    return series


def _known(exposed: dict[str, set[str]], name: str) -> set[str] | None:
    labels = exposed.get(name, PROMETHEUS_OWN.get(name))
    return None if labels is None else labels | TARGET_LABELS


def _check_promql(expr: str, where: str, exposed: dict[str, set[str]]) -> list[str]:
    """Problems with ``expr``: unparsable, a metric no app exposes, a matcher, ``by`` or ``on``
    label that the metrics under it do not carry."""
    pp = pytest.importorskip("promql_parser")
    try:
        ast = pp.parse(expr)
    except ValueError as exc:
        return [f"{where}: not PromQL: {exc}"]
    problems: list[str] = []

    def selectors(node: Any) -> list[Any]:
        found: list[Any] = []
        pp.walk(node, pre_visit=lambda n: found.append(n) if isinstance(
            n, pp.VectorSelector) else None)
        return found

    def need(node: Any, labels: list[str], what: str) -> None:
        for sel in selectors(node):
            known = _known(exposed, sel.name)
            missing = sorted(set(labels) - (known or set()))
            if known is not None and missing:
                problems.append(f"{where}: {what} {missing} not labels of {sel.name}")

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            known = _known(exposed, node.name)
            if known is None:
                problems.append(f"{where}: metric {node.name!r} is not exposed by guardrail")
            else:
                bad = sorted({m.name for m in node.matchers.matchers} - known)
                if bad:
                    problems.append(f"{where}: matcher labels {bad} not labels of {node.name}")
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None \
                and node.modifier.type == pp.AggModifierType.By:
            need(node.expr, list(node.modifier.labels), "by")
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None \
                and node.modifier.matching is not None \
                and node.modifier.matching.type == pp.LabelModifierType.Include:
            for side in (node.lhs, node.rhs):
                need(side, list(node.modifier.matching.labels), "on")

    pp.walk(ast, pre_visit=lambda n: visit(n))
    return problems


# -- docker-compose.yml ------------------------------------------------------------------------

def test_compose_services_and_their_order():
    c = _yaml("docker-compose.yml")
    s = c["services"]
    assert set(s) == {"migrate", "proxy", "postgres", "redis", "prometheus", "grafana"}
    assert s["postgres"]["image"].startswith("postgres:16")
    assert s["redis"]["image"].startswith("redis:7")
    assert s["prometheus"]["image"].startswith("prom/prometheus:")
    assert s["grafana"]["image"].startswith("grafana/grafana:")
    for name in ("migrate", "proxy"):  # one image, built from the repository's Dockerfile
        build = s[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).is_file()
        assert s[name]["image"] == "guardrail:local"
    assert s["migrate"]["command"] == ["guardrail", "db", "upgrade"]
    assert s["migrate"]["restart"] == "no"
    assert s["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert s["proxy"]["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"}}
    for name in ("postgres", "redis"):  # what service_healthy waits for
        assert s[name]["healthcheck"]["test"]
    assert s["proxy"]["command"][:2] == ["guardrail", "serve"]
    assert s["prometheus"]["depends_on"]["proxy"]["condition"] == "service_started"
    assert s["grafana"]["depends_on"]["prometheus"]["condition"] == "service_started"
    assert set(c["volumes"]) >= {"postgres-data", "prometheus-data", "grafana-data"}


def test_compose_commands_exist_in_the_cli(capsys: pytest.CaptureFixture[str]):
    from guardrail.cli import main

    for argv in (["db", "upgrade", "--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
    assert "--workers" in capsys.readouterr().out


def test_compose_environment():
    s = _yaml("docker-compose.yml")["services"]
    migrate, proxy = s["migrate"]["environment"], s["proxy"]["environment"]
    for env in (migrate, proxy):  # the same store for the migration and the workers
        assert re.fullmatch(r"postgresql\+psycopg://guardrail:\$\{POSTGRES_PASSWORD:\?[^}]*\}"
                            r"@postgres:5432/guardrail", env["GUARDRAIL_DATABASE_URL"])
        assert env["GUARDRAIL_REDIS_URL"] == "redis://redis:6379/0"
        assert env["GUARDRAIL_AUTO_MIGRATE"] == "false"  # the migrate service did it
    multiproc = proxy["PROMETHEUS_MULTIPROC_DIR"]
    assert any(t.split(":")[0] == multiproc for t in s["proxy"]["tmpfs"])  # fresh each start
    pg = s["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("guardrail", "guardrail")
    # secrets: interpolated from the environment (required, or passed through when set)
    for svc in s.values():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|_KEY|_KEYS|SECRET", key):
                assert value is None or re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), key
    from guardrail.settings import Settings

    fields = set(Settings.model_fields)
    for key in proxy:  # every GUARDRAIL_ variable is a setting the proxy reads
        if key.startswith("GUARDRAIL_"):
            assert key.removeprefix("GUARDRAIL_").lower() in fields, key


def test_compose_mounts_the_files_here():
    s = _yaml("docker-compose.yml")["services"]
    mounts = {svc: {m.split(":")[1]: m.split(":")[0] for m in s[svc]["volumes"]
                    if m.startswith("./")} for svc in ("prometheus", "grafana")}
    assert (DEPLOY / mounts["prometheus"]["/etc/prometheus"] / "prometheus.yml").is_file()
    assert (DEPLOY / mounts["grafana"]["/etc/grafana/provisioning"] / "datasources").is_dir()
    assert (DEPLOY / mounts["grafana"]["/var/lib/grafana/dashboards"] / "guardrail.json"
            ).is_file()


# -- Prometheus ----------------------------------------------------------------------------------

def test_prometheus_scrapes_the_proxy_and_loads_the_rules():
    p = _yaml("prometheus", "prometheus.yml")
    (job,) = [j for j in p["scrape_configs"] if j["job_name"] == "guardrail"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["proxy:8080"]  # the service, its port
    assert p["rule_files"] == ["/etc/prometheus/alerts.yml"]  # the mounted ./prometheus
    assert (DEPLOY / "prometheus" / "alerts.yml").is_file()
    from guardrail.settings import Settings

    assert Settings.model_fields["port"].default == 8080


def test_alert_rules_are_complete():
    rules = _alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
    used = {m for r in rules for m in METRIC.findall(r["expr"])}
    # what the alerts must watch: errors, overhead, failures, review, governance
    assert used >= {"guardrail_requests_total", "guardrail_overhead_seconds_bucket",
                    "guardrail_scanner_failures_total", "guardrail_review_overdue",
                    "guardrail_review_time_to_decision_seconds_bucket",
                    "guardrail_incidents_overdue", "guardrail_reassessment_due"}
    fail_open = next(r for r in rules if r["alert"] == "GuardrailScannerFailOpen")
    assert 'fail_mode="fail_open"' in fail_open["expr"]


def test_alert_metric_names_exist_in_the_app(exposed: dict[str, set[str]]):
    """Without the parser too: every guardrail_* name in every expression is a real series."""
    for r in _alert_rules():
        missing = set(METRIC.findall(r["expr"])) - set(exposed)
        assert not missing, f"{r['alert']}: {sorted(missing)} not exposed at /metrics"


def test_alert_expressions_are_valid_promql(exposed: dict[str, set[str]]):
    problems = [p for r in _alert_rules() for p in _check_promql(r["expr"], r["alert"], exposed)]
    assert problems == []


def test_the_promql_check_catches_mistakes(exposed: dict[str, set[str]]):
    assert _check_promql("sum(rate(guardrail_requests_total[5m])", "x", exposed)  # syntax
    assert _check_promql("rate(guardrail_requests_total)", "x", exposed)  # type: a vector
    assert _check_promql("guardrail_request_total > 0", "x", exposed)  # no such metric
    assert _check_promql('guardrail_scanner_failures_total{failmode="fail_open"}', "x", exposed)
    assert _check_promql("sum by (route) (guardrail_review_overdue)", "x", exposed)
    assert _check_promql("histogram_quantile(0.9, sum by (le) "
                         "(rate(guardrail_overhead_seconds_sum[5m])))", "x", exposed)
    assert not _check_promql("sum by (le, route) (rate(guardrail_overhead_seconds_bucket[5m]))",
                             "x", exposed)


# -- Grafana ---------------------------------------------------------------------------------

def test_grafana_provisioning_points_at_prometheus_and_the_dashboards():
    (ds,) = _yaml("grafana", "provisioning", "datasources", "prometheus.yml")["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    (provider,) = _yaml("grafana", "provisioning", "dashboards", "guardrail.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    var = _dashboard()["templating"]["list"][0]
    assert var["type"] == "datasource" and var["query"] == "prometheus"
    assert var["current"]["value"] == ds["uid"]


def test_dashboard_matches_the_schema_grafana_needs():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "grafana_dashboard.schema.json").read_text(
        encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_dashboard())


def test_dashboard_layout_and_ids():
    d = _dashboard()
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), p["title"]


def test_dashboard_shows_what_operators_need():
    used = {m for _, expr in _panel_exprs() for m in METRIC.findall(expr)}
    assert used >= {
        "guardrail_requests_total", "guardrail_overhead_seconds_bucket",
        "guardrail_time_to_first_token_seconds_bucket", "guardrail_decisions_total",
        "guardrail_findings_total", "guardrail_scanner_failures_total",
        "guardrail_review_queue", "guardrail_review_overdue", "guardrail_held_responses",
        "guardrail_webhook_attempts_total"}
    titles = " | ".join(p["title"] for p in _dashboard()["panels"]).lower()
    for word in ("request rate", "errors", "overhead", "first token", "decisions", "findings",
                 "failures", "review queue", "overdue", "held", "webhook"):
        assert word in titles, word


def test_dashboard_queries_use_real_metrics(exposed: dict[str, set[str]]):
    for title, expr in _panel_exprs():
        missing = set(METRIC.findall(expr)) - set(exposed)
        assert not missing, f"{title}: {sorted(missing)} not exposed at /metrics"


def test_dashboard_queries_are_valid_promql(exposed: dict[str, set[str]]):
    problems = [p for title, expr in _panel_exprs() for p in _check_promql(expr, title, exposed)]
    assert problems == []

