"""``guardrail systems list|show ID|check`` and ``guardrail report``.

Both read the same settings as the server (``GUARDRAIL_POLICY_DIR``,
``GUARDRAIL_INVENTORY_DIR``, ``GUARDRAIL_ASSESSMENTS_DIR``, ``GUARDRAIL_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardrail.errors import ConfigError


def _load(policy_files: list[str] | None = None) -> Any:
    """(settings, policies, governance, engine), as the server would load them."""
    from guardrail.db import make_engine, upgrade
    from guardrail.governance.models_seen import ModelsSeen
    from guardrail.governance.service import load_governance
    from guardrail.policy import PolicySet
    from guardrail.settings import Settings

    overrides: dict[str, Any] = {}
    if policy_files:
        overrides["policy_files"] = [Path(p) for p in policy_files]
    settings = Settings(**overrides)
    policies = PolicySet.load(settings.policy_dir, list(settings.policy_files),
                              settings.default_policy, settings.key_policy_map())
    engine = make_engine(settings.database_url)
    upgrade(settings.database_url, engine)
    seen = ModelsSeen(engine)
    try:
        gov = load_governance(settings, policies, seen)
    finally:
        seen.close()
    return settings, policies, gov, engine


def _loaded(args: argparse.Namespace, fn: Callable[..., int]) -> int:
    """``fn(settings, policies, governance, engine)``; 1 with the error for a bad record."""
    try:
        loaded = _load(args.policy)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        return fn(*loaded)
    finally:
        loaded[3].dispose()


def cmd_systems(args: argparse.Namespace) -> int:
    return _loaded(args, lambda _s, _p, gov, _e: _systems(args, gov))


def _systems(args: argparse.Namespace, gov: Any) -> int:
    inv = gov.inventory
    if args.action == "list":
        for sid, s in inv.systems.items():
            st = gov.status[sid]
            print(f"{sid:<20} {s.lifecycle_stage:<14} risk={s.risk_level:<12} "
                  f"owner={s.owner.name} ({s.owner.title})  "
                  f"{'REASSESSMENT DUE' if st.due else 'assessed: ' + str(st.assessment)}"
                  f"{'  [placeholder]' if s.placeholder else ''}")
        return 0
    if args.action == "show":
        s = inv.systems.get(args.id)
        if s is None:
            print(f"no AI system {args.id!r} in the inventory ({inv.directory})",
                  file=sys.stderr)
            return 1
        out = {**s.model_dump(mode="json"), "placeholder": s.placeholder,
               "file": str(inv.files.get(args.id, "")) or None,
               "reassessment": gov.status[args.id].as_dict(),
               "assessments": [a.model_dump(mode="json") | {"approved": a.approved,
                                                           "file": str(p)}
                               for p, a in gov.assessments.values() if a.system == args.id]}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    # check: everything loaded (errors were reported above); say what is due
    if not inv.found:
        print(f"warning: no inventory in {inv.directory}: placeholder systems "
              f"{sorted(inv.systems)}", file=sys.stderr)
    print(f"OK: {len(inv.systems)} system(s) in {inv.directory}, {len(gov.assessments)} "
          f"assessment(s); every policy names a known system")
    from guardrail.governance.report import unnamed_owners

    for sid in unnamed_owners(gov):
        print(f"warning: {sid}: no accountable owner named (owner.name)", file=sys.stderr)
    due = gov.due()
    for sid in due:
        for r in gov.status[sid].reasons:
            print(f"due: {sid}: {r.code}: {r.detail}")
    return 3 if due and args.fail_on_due else 0


def cmd_report(args: argparse.Namespace) -> int:
    from guardrail.errors import BadRequestError
    from guardrail.governance.report import Context, build, render
    from guardrail.governance.routes import parse_period

    try:
        period = parse_period(args.start, args.end, args.tz)
    except BadRequestError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    text = ""

    def write(*loaded: Any) -> int:
        nonlocal text
        text = render(build(Context(*loaded), period, args.lang), args.format)
        return 0

    if _loaded(args, write):
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def register(sub: Any) -> None:
    s = sub.add_parser("systems", help="the AI system inventory and its risk assessments")
    ssub = s.add_subparsers(dest="action", required=True)
    ssub.add_parser("list", help="each system, its owner and whether re-assessment is due")
    sh = ssub.add_parser("show", help="one system with its assessments (JSON)")
    sh.add_argument("id")
    sc = ssub.add_parser("check", help="validate inventory and assessments against the "
                         "policies; list what is due for re-assessment")
    sc.add_argument("--fail-on-due", action="store_true",
                    help="exit 3 when a system is due for re-assessment")
    s.add_argument("--policy", action="append", help="policy file (repeatable), as for serve")
    s.set_defaults(func=cmd_systems)

    r = sub.add_parser("report", help="compliance report (METI AI Guidelines for Business, "
                       "cross-mapped to OECD, Hiroshima Code, EU AI Act)")
    r.add_argument("--from", dest="start", metavar="YYYY-MM-DD",
                   help="first day (default: 29 days before --to)")
    r.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day (default: today)")
    r.add_argument("--lang", choices=["ja", "en"], default="en")
    r.add_argument("--format", choices=["html", "md", "json"], default="html")
    r.add_argument("--tz", help="IANA time zone of the days (default: UTC), e.g. Asia/Tokyo")
    r.add_argument("--output", "-o", help="file to write (default: standard output)")
    r.add_argument("--policy", action="append", help="policy file (repeatable), as for serve")
    r.set_defaults(func=cmd_report)
