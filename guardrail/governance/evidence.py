"""Figures for the compliance report, counted from the store over a period.

Everything here is read from tables: incidents (interventions, scanner failures, review
status, overdue), sealed review events (decisions), held responses, the chain head, people
and client keys, corpora, ``models_seen``, and, where the governance lifecycle and redress
tables exist (another part of this package creates them), those too. What no table records
is returned as ``None`` so the report can say so instead of inventing a number.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Engine, MetaData, Table, func, inspect, select

from guardrail.corpus.models import CorpusRow, WorkRow
from guardrail.db import store_errors
from guardrail.holds.models import HeldResponseRow
from guardrail.incidents.events import DECISION, IncidentEventRow
from guardrail.incidents.models import ChainHead, IncidentRow
from guardrail.people.models import ClientKeyRow, PersonRow, PersonTokenRow
from guardrail.policy import Policy

OPEN = ("open", "escalated", "awaiting_second")
CLOSED = ("released", "rejected")
ENFORCED, MONITOR = "decision", "monitor"
FAILURES = ("scanner_failure", "monitor_failure")
REDRESS_KIND = "redress"


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    tz: tzinfo = UTC

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), self.tz).astimezone(UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(), self.tz).astimezone(UTC)


def utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def seconds_summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {"count": len(values), "median_s": statistics.median(ordered), "p90_s": p90,
            "max_s": ordered[-1]}


@dataclass
class Facts:
    period: Period
    interventions: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    deciders: int = 0
    system_decisions: int = 0
    time_to_decision: dict[str, float] | None = None
    holds: dict[str, int] = field(default_factory=dict)
    holds_expired: int = 0
    chain_records: int = 0
    incidents_in_period: int = 0
    people: dict[str, int] = field(default_factory=dict)
    person_tokens: int = 0
    stored_client_keys: int = 0
    corpora: int = 0
    works: int = 0
    models_seen: list[dict[str, Any]] = field(default_factory=list)
    labelled: dict[str, int] | None = None  # by kind; None: no labelled_outputs table
    redress: dict[str, Any] | None = None  # None: no redress table
    lifecycle: dict[str, Any] | None = None  # None: no lifecycle table

    def interventions_where(self, types: set[str] | None = None,
                            categories: set[str] | None = None) -> list[dict[str, Any]]:
        return [r for r in self.interventions
                if (types is None or r["type"] in types)
                and (categories is None or (r["category"] or "") in categories)]


def scanner_types(policies: dict[str, Policy]) -> dict[tuple[str, str], str]:
    """(policy, scanner name) -> scanner type, from the loaded policies."""
    return {(name, s.instance_name): s.type for name, p in policies.items() for s in p.scanners}


def gather(engine: Engine, policies: dict[str, Policy], period: Period,
           now: datetime | None = None) -> Facts:
    with store_errors():
        return _gather(engine, policies, period, now or datetime.now(UTC))


def _gather(engine: Engine, policies: dict[str, Policy], period: Period,
            now: datetime) -> Facts:
    f = Facts(period)
    since, until = period.since, period.until
    types = scanner_types(policies)
    inc = IncidentRow
    in_period = (inc.created_at >= since, inc.created_at < until)
    with engine.connect() as c:
        for pol, scanner, cat, action, kind, n in c.execute(
                select(inc.policy_name, inc.scanner, inc.category, inc.action, inc.kind,
                       func.count()).where(*in_period, inc.kind.in_([ENFORCED, MONITOR]))
                .group_by(inc.policy_name, inc.scanner, inc.category, inc.action, inc.kind)):
            f.interventions.append({
                "policy": pol, "scanner": scanner, "category": cat, "action": action,
                "enforced": kind == ENFORCED, "count": int(n),
                "type": types.get((pol, scanner or ""), scanner or "-")})
        f.failures = {s or "-": int(n) for s, n in c.execute(
            select(inc.scanner, func.count()).where(*in_period, inc.kind.in_(FAILURES))
            .group_by(inc.scanner))}
        not_redress = inc.kind != REDRESS_KIND
        f.statuses = {s: int(n) for s, n in c.execute(
            select(inc.review_status, func.count()).where(*in_period, not_redress)
            .group_by(inc.review_status))}
        f.incidents_in_period = sum(f.statuses.values())
        for name, policy in policies.items():
            cutoff = now - timedelta(minutes=policy.review.sla_minutes)
            f.overdue += int(c.execute(
                select(func.count()).select_from(inc).where(
                    *in_period, not_redress, inc.policy_name == name,
                    inc.review_status.in_(OPEN), inc.created_at < cutoff)).scalar() or 0)
        ev = IncidentEventRow
        for to, reviewer, n in c.execute(
                select(ev.to_status, ev.reviewer, func.count())
                .where(ev.kind == DECISION, ev.created_at >= since, ev.created_at < until)
                .group_by(ev.to_status, ev.reviewer)):
            f.decisions[to] = f.decisions.get(to, 0) + int(n)
            if reviewer == "system":
                f.system_decisions += int(n)
        f.deciders = int(c.execute(
            select(func.count(func.distinct(ev.reviewer)))
            .where(ev.kind == DECISION, ev.created_at >= since, ev.created_at < until,
                   ev.reviewer != "system")).scalar() or 0)
        waits = [(utc(d) - utc(cr)).total_seconds() for cr, d in c.execute(
            select(inc.created_at, inc.decided_at)
            .where(inc.decided_at >= since, inc.decided_at < until, not_redress)) if d]
        f.time_to_decision = seconds_summary(waits)
        h = HeldResponseRow
        f.holds = {s: int(n) for s, n in c.execute(
            select(h.status, func.count()).where(h.created_at >= since, h.created_at < until)
            .group_by(h.status))}
        f.holds_expired = int(c.execute(
            select(func.count()).select_from(h).where(
                h.created_at >= since, h.created_at < until, h.decided_by == "system"))
            .scalar() or 0)
        f.chain_records = int(c.execute(select(ChainHead.count).where(ChainHead.id == 1))
                              .scalar() or 0)
        f.people = {r: int(n) for r, n in c.execute(
            select(PersonRow.role, func.count()).where(PersonRow.disabled.is_(False))
            .group_by(PersonRow.role))}
        f.person_tokens = int(c.execute(select(func.count()).select_from(PersonTokenRow)
                                        .where(PersonTokenRow.revoked_at.is_(None))).scalar()
                              or 0)
        f.stored_client_keys = int(c.execute(
            select(func.count()).select_from(ClientKeyRow)
            .where(ClientKeyRow.revoked_at.is_(None))).scalar() or 0)
        f.corpora = int(c.execute(select(func.count()).select_from(CorpusRow)).scalar() or 0)
        f.works = int(c.execute(select(func.count()).select_from(WorkRow)).scalar() or 0)
        tables = set(inspect(c).get_table_names())
        if "models_seen" in tables:
            from guardrail.governance.models import ModelSeenRow as M

            f.models_seen = [{"system_id": s, "model": m, "first_seen": utc(a).isoformat(),
                              "last_seen": utc(b).isoformat()}
                             for s, m, a, b in c.execute(
                                 select(M.system_id, M.model, M.first_seen, M.last_seen)
                                 .order_by(M.system_id, M.model))]
        if "labelled_outputs" in tables:
            from guardrail.labelling.counts import LabelledOutputRow as L

            f.labelled = {k: int(n) for k, n in c.execute(
                select(L.kind, func.sum(L.count))
                .where(L.day >= since.date(), L.day <= (until - timedelta(microseconds=1)).date())
                .group_by(L.kind))}
        if "redress" in tables:
            f.redress = _redress(c, since, until)
        if "incident_lifecycle" in tables:
            f.lifecycle = _lifecycle(c, since, until)
    return f


def _redress(c: Any, since: datetime, until: datetime) -> dict[str, Any]:
    """Read from the redress table (guardrail.governance.redress) by reflection."""
    t = Table("redress", MetaData(), autoload_with=c)
    cols = t.c
    got = {s: int(n) for s, n in c.execute(
        select(cols.status, func.count()).where(cols.created_at >= since,
                                                cols.created_at < until)
        .group_by(cols.status))}
    out: dict[str, Any] = {"received": sum(got.values()), "by_status": got}
    if "answered_at" in cols:
        waits = [(utc(a) - utc(cr)).total_seconds() for cr, a in c.execute(
            select(cols.created_at, cols.answered_at).where(
                cols.created_at >= since, cols.created_at < until,
                cols.answered_at.is_not(None)))]
        out["answered"] = len(waits)
        out["time_to_answer"] = seconds_summary(waits)
    return out


def _lifecycle(c: Any, since: datetime, until: datetime) -> dict[str, Any]:
    """Current lifecycle status of the period's incidents (guardrail.governance.lifecycle)."""
    t = Table("incident_lifecycle", MetaData(), autoload_with=c)
    inc = IncidentRow.__table__.c
    base = (t.join(IncidentRow.__table__, inc.id == t.c.incident_id))
    where = (inc.created_at >= since, inc.created_at < until)
    by_status = {s: int(n) for s, n in c.execute(
        select(t.c.status, func.count()).select_from(base).where(*where)
        .group_by(t.c.status))}
    out: dict[str, Any] = {"by_status": by_status}
    if "serious_kind" in t.c:
        serious = Counter(k for (k,) in c.execute(
            select(t.c.serious_kind).select_from(base).where(*where,
                                                              t.c.serious_kind.is_not(None))))
        out["serious"] = dict(serious)
    return out
