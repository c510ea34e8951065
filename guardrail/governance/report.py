"""The compliance report: one row per requirement (``data/crossmap.yaml``), each with the
guardrail control that serves it, that control's configuration (from the loaded policies,
inventory and settings), evidence counted from the store over the period, the cross-map, and
the organisation's own part (``gap``: empty where the product covers it).

:func:`build` returns the report as plain data (the JSON format); :func:`render` writes it
as JSON, Markdown or HTML (Jinja2, printable to PDF). The CLI is ``guardrail report``; the
page ``/governance/report``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Engine

from guardrail import __version__
from guardrail.governance import catalog as cat
from guardrail.governance.crossmap import FRAMEWORKS, Catalogue, Requirement, catalogue
from guardrail.governance.evidence import Facts, Period, gather
from guardrail.governance.service import Governance, assessments_dir
from guardrail.policy import Policy, PolicySet
from guardrail.settings import Settings

Format = Literal["json", "md", "html"]
TEMPLATES = Path(__file__).parent / "templates"
UNNAMED = ("TO BE NAMED", "not named")
Item = dict[str, Any]


@dataclass
class Context:
    settings: Settings
    policies: PolicySet
    gov: Governance
    engine: Engine


@dataclass
class _Row:
    """What builders see: the facts, the context and the language."""

    facts: Facts
    ctx: Context
    lang: str

    def t(self, key: str, **fmt: Any) -> str:
        return cat.t(key, self.lang, **fmt)

    @property
    def policies(self) -> dict[str, Policy]:
        return self.ctx.policies.policies


def _dur(seconds: float, lang: str) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} {'分' if lang == 'ja' else 'min'}"
    return f"{seconds / 3600:.1f} {'時間' if lang == 'ja' else 'h'}"


def _summary(s: dict[str, float] | None, r: _Row) -> tuple[int, list[str]]:
    if not s:
        return 0, []
    return int(s["count"]), [f"{r.t('median')}: {_dur(s['median_s'], r.lang)}",
                             f"{r.t('p90')}: {_dur(s['p90_s'], r.lang)}",
                             f"{r.t('max')}: {_dur(s['max_s'], r.lang)}"]


def item(key: str, label: str, value: Any, detail: list[str] | None = None,
         recorded: bool = True) -> Item:
    return {"key": key, "label": label, "value": value, "detail": detail or [],
            "recorded": recorded}


def _counts(d: dict[str, int], r: _Row) -> list[str]:
    return [f"{cat.status_word(k, r.lang)}: {v}" for k, v in sorted(d.items())]


# -- evidence builders: key[:types[:categories]] -> items -----------------------------------

def ev_interventions(r: _Row, arg: str | None) -> list[Item]:
    types_, _, cats = (arg or "").partition(":")
    rows = r.facts.interventions_where(set(types_.split("+")) if types_ else None,
                                       set(cats.split("+")) if cats else None)
    label = r.t("ev_interventions") + (f" ({types_.replace('+', ', ')}"
                                       f"{': ' + cats.replace('+', ', ') if cats else ''})"
                                       if types_ else "")
    out = []
    for enforced, key in ((True, "ev_interventions"), (False, "ev_monitor")):
        mine = [x for x in rows if x["enforced"] == enforced]
        if not enforced and not mine:
            continue
        detail = [f"{x['scanner'] or '-'} / {x['category'] or '-'} → {x['action']}: "
                  f"{x['count']}" for x in sorted(mine, key=lambda x: -x["count"])]
        name = f"interventions{':' + arg if arg else ''}{'' if enforced else '.monitor'}"
        out.append(item(name, label if enforced else r.t(key), sum(x["count"] for x in mine),
                        detail))
    return out


def ev_scanner_failures(r: _Row, _arg: str | None) -> list[Item]:
    f = r.facts.failures
    return [item("scanner_failures", r.t("ev_failures"), sum(f.values()),
                 [f"{k}: {v}" for k, v in sorted(f.items())])]


def ev_reviews(r: _Row, _arg: str | None) -> list[Item]:
    f = r.facts
    return [item("reviews", r.t("ev_decisions"), sum(f.decisions.values()),
                 _counts(f.decisions, r)),
            item("reviews.deciders", r.t("ev_deciders"), f.deciders),
            item("reviews.system", r.t("ev_system_decisions"), f.system_decisions)]


def ev_time_to_decision(r: _Row, _arg: str | None) -> list[Item]:
    n, detail = _summary(r.facts.time_to_decision, r)
    return [item("time_to_decision", r.t("ev_time_to_decision"), n, detail)]


def ev_holds(r: _Row, _arg: str | None) -> list[Item]:
    f = r.facts
    return [item("holds", r.t("ev_holds"), sum(f.holds.values()), _counts(f.holds, r)),
            item("holds.expired", r.t("ev_holds_expired"), f.holds_expired)]


def ev_incidents(r: _Row, _arg: str | None) -> list[Item]:
    f = r.facts
    return [item("incidents", r.t("ev_incidents"), f.incidents_in_period,
                 _counts(f.statuses, r)),
            item("incidents.overdue", r.t("ev_overdue"), f.overdue)]


def ev_labelled_outputs(r: _Row, _arg: str | None) -> list[Item]:
    ps = r.policies.values()
    got = r.facts.labelled
    counted = (item("labelled_outputs", r.t("ev_labelled"), sum(got.values()),
                    [f"{k}: {n}" for k, n in sorted(got.items())])
               if got is not None else
               item("labelled_outputs", r.t("ev_labelled"), None, [r.t("ev_labelled_note")],
                    recorded=False))
    return [counted,
            item("labelling.disclosure", r.t("ev_disclosure_policies"),
                 sum(1 for p in ps if p.labelling.disclosure)),
            item("labelling.notice", r.t("ev_notice_policies"),
                 sum(1 for p in ps if p.labelling.notice.position != "off")),
            item("labelling.images", r.t("ev_signing_policies"),
                 sum(1 for p in ps if p.labelling.images.sign))]


def _reasons(sid: str, r: _Row) -> str:
    st = r.ctx.gov.status[sid]
    return f"{sid}: " + "; ".join(cat.t(f"rs_{x.code}", r.lang) + f" ({x.detail})"
                                  for x in st.reasons)


def ev_assessments(r: _Row, _arg: str | None) -> list[Item]:
    status = r.ctx.gov.status
    current = [s for s, st in status.items() if st.assessment and not st.due]
    due = [s for s, st in status.items() if st.due]
    return [item("assessments.current", r.t("ev_assessments"), len(current),
                 [f"{s}: {status[s].assessment}" for s in current]),
            item("assessments.due", r.t("ev_due"), len(due), [_reasons(s, r) for s in due])]


def ev_models_seen(r: _Row, _arg: str | None) -> list[Item]:
    rows = r.facts.models_seen
    return [item("models_seen", r.t("ev_models_seen"), len(rows),
                 [f"{x['system_id']}: {x['model']} ({x['first_seen'][:10]} – "
                  f"{x['last_seen'][:10]})" for x in rows])]


def unnamed_owners(gov: Governance) -> list[str]:
    return [s.id for s in gov.inventory.systems.values()
            if s.placeholder or s.owner.name.strip() in UNNAMED]


def ev_inventory(r: _Row, _arg: str | None) -> list[Item]:
    systems = r.ctx.gov.inventory.systems
    stages: dict[str, int] = {}
    for s in systems.values():
        stages[s.lifecycle_stage] = stages.get(s.lifecycle_stage, 0) + 1
    unnamed = unnamed_owners(r.ctx.gov)
    return [item("inventory.systems", r.t("ev_systems"), len(systems),
                 [f"{cat.word(cat.STAGES, k, r.lang)}: {v}" for k, v in sorted(stages.items())]),
            item("inventory.owners", r.t("ev_owners"), len(systems) - len(unnamed),
                 [f"{s.id}: {s.owner.name} ({s.owner.title})" for s in systems.values()
                  if s.id not in unnamed]),
            item("inventory.placeholders", r.t("ev_placeholders"),
                 sum(1 for s in systems.values() if s.placeholder))]


def ev_redress(r: _Row, _arg: str | None) -> list[Item]:
    red = r.facts.redress
    if red is None:
        return [item("redress", r.t("ev_redress"), None, [r.t("ev_redress_none")],
                     recorded=False)]
    n, detail = _summary(red.get("time_to_answer"), r)
    out = [item("redress", r.t("ev_redress"), red["received"], _counts(red["by_status"], r))]
    if "answered" in red:
        out.append(item("redress.answered", r.t("ev_redress_answered"), red["answered"],
                        detail))
    return out


def ev_lifecycle(r: _Row, _arg: str | None) -> list[Item]:
    lc = r.facts.lifecycle
    if lc is None:
        return [item("lifecycle", r.t("ev_lifecycle"), None, [r.t("ev_lifecycle_none")],
                     recorded=False)]
    out = [item("lifecycle", r.t("ev_lifecycle"), sum(lc["by_status"].values()),
                [f"{k}: {v}" for k, v in sorted(lc["by_status"].items())])]
    if "serious" in lc:
        out.append(item("lifecycle.serious", r.t("ev_serious"), sum(lc["serious"].values()),
                        [f"{k}: {v}" for k, v in sorted(lc["serious"].items())]))
    return out


def ev_chain(r: _Row, _arg: str | None) -> list[Item]:
    f = r.facts
    return [item("chain", r.t("ev_chain"), f.chain_records, [r.t("ev_chain_note")]),
            item("chain.period", r.t("ev_incidents_period"), f.incidents_in_period)]


def ev_access(r: _Row, _arg: str | None) -> list[Item]:
    f, s = r.facts, r.ctx.settings
    return [item("access.people", r.t("ev_people"), sum(f.people.values()),
                 [f"{k}: {v}" for k, v in sorted(f.people.items())]),
            item("access.tokens", r.t("ev_tokens"), f.person_tokens),
            item("access.client_keys", r.t("ev_client_keys"),
                 len(s.api_keys) + f.stored_client_keys),
            item("access.admin_key", r.t("ev_admin_key"), _yn(r, s.admin_key is not None)),
            item("access.dev_mode", r.t("ev_dev_mode"),
                 _yn(r, s.dev_mode and not f.stored_client_keys))]


def ev_corpora(r: _Row, _arg: str | None) -> list[Item]:
    return [item("corpora", r.t("ev_corpora"), f"{r.facts.corpora} / {r.facts.works}")]


def ev_none(r: _Row, _arg: str | None) -> list[Item]:
    return [item("none", r.t("ev_none"), None, [r.t("ev_none_note")], recorded=False)]


EVIDENCE: dict[str, Callable[[_Row, str | None], list[Item]]] = {
    "interventions": ev_interventions, "scanner_failures": ev_scanner_failures,
    "reviews": ev_reviews, "time_to_decision": ev_time_to_decision, "holds": ev_holds,
    "incidents": ev_incidents, "labelled_outputs": ev_labelled_outputs,
    "assessments": ev_assessments, "models_seen": ev_models_seen, "inventory": ev_inventory,
    "redress": ev_redress, "lifecycle": ev_lifecycle, "chain": ev_chain, "access": ev_access,
    "corpora": ev_corpora, "none": ev_none,
}


# -- configuration builders: key[:scanner type] -> [{label, value}] -------------------------

def _per_policy(r: _Row, label: str, fn: Callable[[Policy], str]) -> list[Item]:
    return [{"label": f"{label} ({name})", "value": fn(p)} for name, p in
            sorted(r.policies.items())]


def _yn(r: _Row, value: bool) -> str:
    return r.t("yes") if value else r.t("no")


def cf_inventory(r: _Row, _arg: str | None) -> list[Item]:
    return [{"label": f"{r.t('cf_system')} {s.id}", "value": r.t(
        "cv_system", name=s.name, stage=cat.word(cat.STAGES, s.lifecycle_stage, r.lang),
        risk=cat.word(cat.RISKS, s.risk_level, r.lang), owner=s.owner.name,
        title=s.owner.title)} for s in r.ctx.gov.inventory.systems.values()]


def cf_policies(r: _Row, _arg: str | None) -> list[Item]:
    return _per_policy(r, r.t("cf_policy"),
                       lambda p: r.t("cv_policy", version=p.version, system=p.system))


def cf_scanners(r: _Row, arg: str | None) -> list[Item]:
    out = []
    for name, p in sorted(r.policies.items()):
        for s in p.scanners:
            if arg and s.type != arg:
                continue
            categories = getattr(s, "categories", None) or {}
            extra = "".join(f"; {k} ≥ {v.threshold} → {v.action.value}"
                            for k, v in sorted(categories.items()))
            out.append({"label": f"{r.t('cf_scanner')} {name}/{s.instance_name} ({s.type})",
                        "value": r.t("cv_scanner", action=s.action.value,
                                     threshold=s.threshold, enforcement=s.enforcement)
                        + extra})
    return out or [{"label": r.t("cf_scanner") + (f" ({arg})" if arg else ""),
                    "value": r.t("none_configured")}]


def cf_fail_mode(r: _Row, _arg: str | None) -> list[Item]:
    return _per_policy(r, r.t("cf_fail_mode"), lambda p: r.t(
        "cv_fail_mode", mode=p.on_scanner_error, action=p.fail_closed_action.value,
        timeout=p.scanner_timeout_ms))


def cf_review(r: _Row, _arg: str | None) -> list[Item]:
    return _per_policy(r, r.t("cf_review"), lambda p: r.t(
        "cv_review", route=", ".join(a.value for a in p.review.route) or "-",
        sla=p.review.sla_minutes, four=", ".join(p.review.four_eyes) or "-",
        expiry=p.hold.expire_after_minutes, on_expiry=p.hold.on_expiry))


def cf_labelling(r: _Row, _arg: str | None) -> list[Item]:
    return _per_policy(r, r.t("cf_labelling"), lambda p: r.t(
        "cv_labelling", disclosure=_yn(r, p.labelling.disclosure),
        headers=_yn(r, p.labelling.headers), notice=p.labelling.notice.position,
        sign=_yn(r, p.labelling.images.sign)))


def cf_retention(r: _Row, _arg: str | None) -> list[Item]:
    out = _per_policy(r, r.t("cf_retention"), lambda p: r.t(
        "cv_retention", days=p.incidents.retention_days, chars=p.incidents.excerpt_chars))
    floor = getattr(r.ctx.settings, "retention_floor_days", None)
    if floor is not None:
        out.append({"label": r.t("cf_retention"), "value": r.t("cv_floor", days=floor)})
    return out


def cf_auth(r: _Row, _arg: str | None) -> list[Item]:
    s = r.ctx.settings
    return [{"label": r.t("cf_auth"), "value": r.t(
        "cv_auth", dev=_yn(r, s.dev_mode), admin=_yn(r, s.admin_key is not None),
        keys=len(s.api_keys), ttl=f"{s.session_ttl_s / 3600:g}",
        idle=f"{s.session_idle_s / 60:g}", fails=s.signin_max_failures,
        window=f"{s.signin_window_s:g}")}]


def cf_incident_owner(r: _Row, _arg: str | None) -> list[Item]:
    return _per_policy(r, r.t("cf_owner"), lambda p: p.incidents.owner)


def cf_assessments(r: _Row, _arg: str | None) -> list[Item]:
    gov = r.ctx.gov
    drafts = sorted(a.id for _, a in gov.assessments.values() if not a.approved)
    return [{"label": r.t("cf_assessments"), "value": r.t(
        "cv_assessments", dir=str(assessments_dir(r.ctx.settings)), n=len(gov.assessments),
        drafts=", ".join(drafts) or "-")}]


CONFIG: dict[str, Callable[[_Row, str | None], list[Item]]] = {
    "inventory": cf_inventory, "policies": cf_policies, "scanners": cf_scanners,
    "fail_mode": cf_fail_mode, "review": cf_review, "labelling": cf_labelling,
    "retention": cf_retention, "auth": cf_auth, "incident_owner": cf_incident_owner,
    "assessments": cf_assessments,
}


def _dispatch(table: dict[str, Callable[[_Row, str | None], list[Item]]], key: str,
              r: _Row) -> list[Item]:
    name, _, arg = key.partition(":")
    return table[name](r, arg or None)


def _dynamic_gaps(req: Requirement, r: _Row) -> list[str]:
    """Findings of this installation that the organisation must act on."""
    gov, out = r.ctx.gov, []
    if req.id in ("lifecycle_governance", "transparency_capabilities") and \
            not gov.inventory.found:
        out.append(r.t("gap_placeholder", dir=str(gov.inventory.directory)))
    if req.id in ("accountability", "named_owners") and unnamed_owners(gov):
        out.append(r.t("gap_owner", systems=", ".join(unnamed_owners(gov))))
    if req.id in ("risk_assessment", "safety") and gov.due():
        out.append(r.t("gap_due", systems=", ".join(gov.due())))
    if req.id == "harmful_content_disclosure" and not any(
            p.labelling.notice.position != "off" for p in r.policies.values()):
        out.append(r.t("gap_no_notice"))
    if req.id == "ip_review" and (r.facts.corpora == 0 or not any(
            s.type == "ip" for p in r.policies.values() for s in p.scanners)):
        out.append(r.t("gap_no_ip"))
    if req.id in ("security", "security_adversarial") and r.ctx.settings.dev_mode \
            and not r.facts.stored_client_keys:
        out.append(r.t("gap_dev_mode"))
    return out


def _cross_map(req: Requirement, c: Catalogue, lang: str) -> dict[str, list[Item]]:
    return {fw: [{"ref": e.ref, "title": c.title_of(fw, e.ref, lang)
                  or cat.t("no_counterpart", lang), "source": e.source,
                  "note": e.note_in(lang)}
                 for e in getattr(req.cross_map, fw)] for fw in FRAMEWORKS}


def row(req: Requirement, r: _Row, c: Catalogue) -> dict[str, Any]:
    evidence = [it for key in req.evidence for it in _dispatch(EVIDENCE, key, r)]
    gap = " ".join([req.gap.get(r.lang), *_dynamic_gaps(req, r)]).strip()
    return {
        "requirement": {"id": req.id, "group": req.group, "title": req.title.get(r.lang),
                        "source": req.meti,
                        "note": req.meti_note_ja if r.lang == "ja" else req.meti_note},
        "control": {"summary": req.control.get(r.lang),
                    "configuration": [x for key in req.config
                                      for x in _dispatch(CONFIG, key, r)]},
        "evidence": evidence,
        "cross_map": _cross_map(req, c, r.lang),
        "gap": gap,
    }


def build(ctx: Context, period: Period, lang: str = "en",
          now: datetime | None = None) -> dict[str, Any]:
    """The report as data: metadata and ``rows`` (one per requirement)."""
    now = now or datetime.now(UTC)
    lang = lang if lang in cat.LANGS else "en"
    c = catalogue()
    facts = gather(ctx.engine, ctx.policies.policies, period, now)
    r = _Row(facts, ctx, lang)
    rows = [row(req, r, c) for req in c.requirements]
    gov = ctx.gov
    return {
        "title": cat.t("report_title", lang),
        "subtitle": cat.t("report_subtitle", lang),
        "lang": lang,
        "generated_at": now.isoformat(),
        "generator": f"guardrail {__version__}",
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat(),
                   "time_zone": str(period.tz)},
        "documents": c.documents,
        "notes": c.notes[lang],  # type: ignore[index]
        "policies": [{"name": n, "version": p.version, "system": p.system}
                     for n, p in sorted(ctx.policies.policies.items())],
        "systems": [{"id": s.id, "name": s.name, "stage": s.lifecycle_stage,
                     "risk_level": s.risk_level, "owner": s.owner.model_dump(),
                     "placeholder": s.placeholder,
                     "reassessment": gov.status[s.id].as_dict() if s.id in gov.status else None}
                    for s in gov.inventory.systems.values()],
        "summary": {"rows": len(rows),
                    "with_evidence": sum(1 for x in rows if any(
                        e["recorded"] for e in x["evidence"])),
                    "with_gap": sum(1 for x in rows if x["gap"]),
                    "reassessment_due": gov.due()},
        "rows": rows,
    }


# -- rendering ---------------------------------------------------------------------------------

def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.globals["t"] = cat.t
    env.globals["stage_word"] = lambda v, lang: cat.word(cat.STAGES, v, lang)
    env.globals["risk_word"] = lambda v, lang: cat.word(cat.RISKS, v, lang)
    env.globals["role_word"] = lambda v, lang: cat.word(cat.ROLES, v, lang)
    env.globals["group_word"] = lambda v, lang: cat.word(cat.GROUPS, v, lang)
    env.globals["frameworks"] = FRAMEWORKS
    env.filters["md"] = lambda v: str(v).replace("|", "\\|").replace("\n", " ")
    return env


def render(report: dict[str, Any], fmt: Format, **page: Any) -> str:
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n"
    name = "report.md" if fmt == "md" else "report.html"
    return environment().get_template(name).render(r=report, lang=report["lang"], **page)
