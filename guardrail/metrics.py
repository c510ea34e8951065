"""Prometheus metrics for SREs. One registry per app (tests build many apps).

With ``PROMETHEUS_MULTIPROC_DIR`` set (``guardrail serve --workers N`` sets it), every worker
writes its values to files there and ``/metrics`` from any worker reports them all
(prometheus_client's multiprocess mode): counters and histograms summed, in-flight gauges
summed over live workers, the store-derived gauges (queue, held responses; set at scrape time)
the most recent value. Collectors registered by other modules (governance's gauges computed
from the store) are rendered beside them.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

_LAT = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class GuardrailRegistry(CollectorRegistry):
    """A registry that remembers the collectors that are not metric objects (so multiprocess
    rendering can add them to what the files hold)."""

    def __init__(self) -> None:
        super().__init__()
        self.custom: list[Any] = []

    def register(self, collector: Any) -> None:
        super().register(collector)
        if not isinstance(collector, MetricWrapperBase):
            self.custom.append(collector)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or GuardrailRegistry()
        self._scan_children: dict[tuple[str, str], Histogram] = {}
        self.requests = Counter("guardrail_requests_total", "Proxy requests by route and status",
                                ["route", "status"], registry=r)
        self.in_flight = Gauge("guardrail_in_flight_requests", "Requests being served",
                               ["route"], registry=r, multiprocess_mode="livesum")
        self.upstream_latency = Histogram(
            "guardrail_upstream_latency_seconds",
            "Upstream time (to full body, or to end of stream)", ["route"], buckets=_LAT,
            registry=r)
        self.overhead = Histogram(
            "guardrail_overhead_seconds",
            "Time guardrail adds on top of the upstream (scanning, incidents, relay)", ["route"],
            buckets=_LAT, registry=r)
        self.ttft = Histogram("guardrail_time_to_first_token_seconds",
                              "Streaming: request start to first released content", ["route"],
                              buckets=_LAT, registry=r)
        self.decisions = Counter("guardrail_decisions_total", "Decisions by action",
                                 ["action", "policy"], registry=r)
        self.findings = Counter("guardrail_findings_total", "Acting findings by scanner/category",
                                ["scanner", "category", "action"], registry=r)
        self.scanner_seconds = Histogram("guardrail_scanner_seconds", "Scanner run time",
                                         ["scanner", "outcome"], buckets=_LAT, registry=r)
        self.scanner_failures = Counter(
            "guardrail_scanner_failures_total",
            "Scanner errors and timeouts, by the fail mode that applied (fail_open: the text "
            "was flagged and released; fail_closed: the policy's fail-closed action) and the "
            "scanner's enforcement (monitor: nothing was enforced)",
            ["scanner", "reason", "fail_mode", "enforcement"], registry=r)
        self.incidents = Counter(
            "guardrail_incidents_total",
            "Incident records written, by kind (decision, scanner_failure; monitor and "
            "monitor_failure for monitor-mode scanners, whose action was not enforced)",
            ["kind", "action"], registry=r)
        self.background_tasks = Gauge(
            "guardrail_background_tasks",
            "Background work in flight (monitor-mode scans and their incident writes)",
            registry=r, multiprocess_mode="livesum")

        self.review_decisions = Counter(
            "guardrail_review_decisions_total",
            "Review decisions by the incident's scanner and the decision (release, reject, "
            "escalate, second_release; by: person or system for expired holds)",
            ["scanner", "decision", "by"], registry=r)
        self.time_to_decision = Histogram(
            "guardrail_review_time_to_decision_seconds",
            "From incident to final decision (released or rejected), by scanner",
            ["scanner"], registry=r,
            buckets=(60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400))
        self.queue_depth = Gauge("guardrail_review_queue", "Incidents by review status "
                                 "(read from the store at scrape time)", ["status"], registry=r,
                                 multiprocess_mode="mostrecent")
        self.queue_overdue = Gauge("guardrail_review_overdue",
                                   "Open incidents past their policy's review SLA", registry=r,
                                   multiprocess_mode="mostrecent")
        self.held_responses = Gauge("guardrail_held_responses", "Held responses by status",
                                    ["status"], registry=r, multiprocess_mode="mostrecent")
        self.outbox_writes = Counter(
            "guardrail_outbox_writes_total", "Incident records written to the local outbox "
            "because the store was unreachable (policy on_store_error: fail_open)", registry=r)
        self.outbox_pending = Gauge("guardrail_outbox_pending", "Outbox records not yet in "
                                    "the store", registry=r, multiprocess_mode="livesum")
        self.webhook_deliveries = Counter(
            "guardrail_webhook_attempts_total", "Decision webhook attempts by outcome",
            ["outcome"], registry=r)

    def observe_scan(self, scanner: str, outcome: str, seconds: float) -> None:
        child = self._scan_children.get((scanner, outcome))
        if child is None:
            child = self._scan_children[(scanner, outcome)] = self.scanner_seconds.labels(
                scanner, outcome)
        child.observe(seconds)

    def observe_failure(self, scanner: str, reason: str, fail_mode: str,
                        enforcement: str) -> None:
        self.scanner_failures.labels(scanner, reason, fail_mode, enforcement).inc()

    def render(self) -> bytes:
        if not multiprocess():
            return generate_latest(self.registry)
        from prometheus_client import multiprocess as mp

        merged = CollectorRegistry()
        mp.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        for c in getattr(self.registry, "custom", []):
            merged.register(c)
        return generate_latest(merged)


UNMATCHED_ROUTE = "other"


class RouteLabels:
    """Route labels for request metrics: the template of the route that served a request
    (FastAPI puts the matched route in the ASGI scope, e.g.
    ``/v1/guardrail/incidents/{incident_id}``), ``other`` for a path no route serves, so
    arbitrary paths never create new series.

    The in-flight gauge needs its label before routing: :meth:`before` matches the request
    against the routes already seen (a route's very first request counts as ``other`` there).
    """

    def __init__(self) -> None:
        self._seen: dict[int, tuple[str, BaseRoute]] = {}  # by identity: bounded by the app

    def before(self, scope: Scope) -> str:
        for path, route in list(self._seen.values()):
            if route.matches(scope)[0] is Match.FULL:
                return path
        return UNMATCHED_ROUTE

    def after(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if not isinstance(route, BaseRoute) or not isinstance(path, str):
            return UNMATCHED_ROUTE
        self._seen.setdefault(id(route), (path, route))
        return path
