"""Retention: ``guardrail incidents purge`` removes content and personal data past retention,
and the chain still verifies.

Past its policy's ``incidents.retention_days`` (never less than
``GUARDRAIL_RETENTION_FLOOR_DAYS``, 183 by default: EU AI Act Arts. 19 and 26(6) keep logs at
least six months; a record whose policy is no longer loaded gets the longest configured
retention), a record loses:

* an incident: its ``excerpt``, and of its ``evidence`` everything but ids and the findings'
  metadata (scanner, kind, category, score, action, threshold): spans, quoted passages,
  values and messages go; ``evidence.purged`` says so;
* a held response: its encrypted body (``ciphertext``);
* a redress intake (once its incident is purged): the complainant's text, contact and the
  ids they typed, and the published answer (``purged_at`` says when).

What stays: every id, time, policy, action, scanner, score, review status, the content's
SHA-256, and every record's hash. Incidents still under review (open, escalated, awaiting a
second reviewer) or in the lifecycle and not closed are kept, whatever their age.

Why the chain still verifies, and what that proves. A record's hash is
``sha256(prev_hash + canonical(sealed fields))``; once a field's value is gone, nobody can
recompute it. So the purge, in the transaction that removes the content and holding the chain
head's lock:

1. recomputes each candidate's hash from its full content and refuses (reports, leaves as
   is) any record whose content no longer matches: a purge never launders an edit;
2. seals ``purge`` events into the chain (kind ``purge``, after every record they speak of),
   whose note lists, per record, its sequence number, its hash (kept in the record) and
   ``purged_sha256``: the digest of the record's sealed fields as the purge leaves them
   (:func:`guardrail.incidents.events.purged_digest`), plus the held responses and redress
   intakes it emptied.

Verify then accepts a record whose content no longer matches its hash if, and only if, a
sealed purge event names that sequence number with that very hash, and the record's sealed
fields digest to the ``purged_sha256`` the event recorded
(:func:`guardrail.incidents.events.vouched_hash`). Everything else is checked as before: the
previous-hash links (no record removed, inserted or reordered), the sequence, the head. The
kept fields stay bound: changing an action, a time or a score after the purge changes the
digest the purge event sealed, and the purge event is bound by the chain after it. A forged
purge event would have to be chained in, which means re-hashing everything after it and the
head: the same work as rewriting the chain without purges, and caught the same way (a head
kept outside the database, such as a signed evidence bundle's manifest,
:mod:`guardrail.governance.bundle`). What is lost, by design, is proof of the removed
content; the record's hash still commits to it, so whoever holds a copy (an earlier bundle)
can check that copy against the record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from guardrail.db import store_errors
from guardrail.governance.lifecycle import NONE as NOT_IN_LIFECYCLE
from guardrail.governance.lifecycle import LifecycleRow
from guardrail.governance.redress import RedressRow
from guardrail.holds.models import HeldResponseRow
from guardrail.incidents import events
from guardrail.incidents.events import IncidentEventRow
from guardrail.incidents.models import IncidentRow
from guardrail.incidents.store import IncidentStore, incident_link, row_dict, sealed_fields

OPEN_REVIEW = ("open", "escalated", "awaiting_second")  # guardrail.review.decisions
KEPT_EVIDENCE = ("response_id", "reason", "fail_mode", "enforcement", "enforced", "channel",
                 "linked_incident_ids")
KEPT_FINDING = ("scanner", "kind", "category", "score", "action", "threshold")
BATCH = 200  # records per purge event


def purged_evidence(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """What an incident's evidence keeps past retention: ids and findings' metadata."""
    out: dict[str, Any] = {k: evidence[k] for k in KEPT_EVIDENCE if k in evidence}
    found = evidence.get("findings")
    if isinstance(found, list):
        out["findings"] = [{k: f[k] for k in KEPT_FINDING if k in f}
                           for f in found if isinstance(f, dict)]
    out["purged"] = True
    return out


@dataclass(frozen=True)
class Retention:
    """Days each policy keeps its records, and the floor nothing goes below."""

    days: Mapping[str, int]  # policy name -> incidents.retention_days
    floor_days: int = 183

    def cutoff(self, policy_name: str, now: datetime) -> datetime:
        configured = self.days.get(policy_name, max(self.days.values(), default=0))
        return now - timedelta(days=max(configured, self.floor_days))

    def earliest(self, now: datetime) -> datetime:
        """Nothing at or after this is purged under any policy."""
        return now - timedelta(days=max(min(self.days.values(), default=0), self.floor_days))

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        from guardrail.policy import PolicySet

        policies = PolicySet.load(settings.policy_dir, list(settings.policy_files),
                                  settings.default_policy, settings.key_policy_map())
        return cls({n: p.incidents.retention_days for n, p in policies.policies.items()},
                   settings.retention_floor_days)


@dataclass
class PurgeReport:
    dry_run: bool
    incidents: int = 0
    held: int = 0
    redress: int = 0
    kept_open: int = 0  # past retention, but under review or in the lifecycle
    refused: list[str] = field(default_factory=list)  # content no longer matching its hash
    events: list[int] = field(default_factory=list)  # the purge events' sequence numbers

    @property
    def ok(self) -> bool:
        return not self.refused


def _utc(t: datetime) -> datetime:
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)


def _candidates(store: IncidentStore, rules: Retention, now: datetime,
                done: Mapping[int, events.Purged]) -> Iterator[list[str]]:
    """Ids of incidents past retention and not yet purged, in batches, oldest first."""
    last = 0
    while True:
        with store_errors(), store.sessions() as s:
            rows = s.execute(select(IncidentRow.seq, IncidentRow.id, IncidentRow.created_at,
                                    IncidentRow.policy_name)
                             .where(IncidentRow.seq > last,
                                    IncidentRow.created_at < rules.earliest(now))
                             .order_by(IncidentRow.seq).limit(BATCH * 5)).all()
        if not rows:
            return
        ids = [i for seq, i, at, pol in rows
               if seq not in done and _utc(at) < rules.cutoff(pol, now)]
        for k in range(0, len(ids), BATCH):
            yield ids[k:k + BATCH]
        last = int(rows[-1][0])


def _seal(store: IncidentStore, s: Any, body: dict[str, Any], who: str,
          now: datetime) -> int:
    ev = events.seal(store, s, IncidentEventRow(
        incident_id="purge_" + now.strftime("%Y%m%dT%H%M%S"), created_at=now,
        kind=events.PURGE, reviewer=who[:128], person_id=None, role="system",
        from_status="", to_status="purged",
        note=json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))))
    return int(ev.seq or 0)


def _purge_batch(store: IncidentStore, ids: list[str], rules: Retention, now: datetime,
                 who: str, rep: PurgeReport) -> None:
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)
        rows = s.execute(select(IncidentRow).where(IncidentRow.id.in_(ids))
                         .order_by(IncidentRow.seq)).scalars().all()
        busy = set(s.execute(select(LifecycleRow.incident_id).where(
            LifecycleRow.incident_id.in_(ids),
            LifecycleRow.status.not_in((NOT_IN_LIFECYCLE, "closed")))).scalars())
        records: list[dict[str, Any]] = []
        for row in rows:
            if row.review_status in OPEN_REVIEW or row.id in busy:
                rep.kept_open += 1
                continue
            rec = row_dict(row)
            link = incident_link(rec)
            if link.computed_hash != link.stored_hash:
                rep.refused.append(f"record {row.seq} ({row.id}): its content does not match "
                                   "its hash; not purged (run guardrail incidents verify)")
                continue
            after = {**rec, "excerpt": None, "evidence": purged_evidence(row.evidence or {})}
            records.append({"seq": row.seq, "id": row.id, "record_hash": row.record_hash,
                            "purged_sha256": events.purged_digest(sealed_fields(after)),
                            "fields": ["excerpt", "evidence"],
                            "cutoff": rules.cutoff(row.policy_name, now).isoformat()})
            if not rep.dry_run:
                row.excerpt, row.evidence = None, after["evidence"]
        purged_ids = [r["id"] for r in records]
        redress = s.execute(select(RedressRow).where(RedressRow.incident_id.in_(purged_ids),
                                                     RedressRow.purged_at.is_(None))
                            ).scalars().all() if purged_ids else []
        rep.incidents += len(records)
        rep.redress += len(redress)
        if rep.dry_run or not records:
            return
        for r in redress:
            r.text = r.contact = r.given = r.answer = None
            r.purged_at = now
        rep.events.append(_seal(store, s, {
            "purge": "retention", "records": records,
            "redress_incidents": sorted(r.incident_id for r in redress)}, who, now))


def _purge_held(store: IncidentStore, rules: Retention, now: datetime, who: str,
                rep: PurgeReport) -> None:
    with store_errors(), store.sessions.begin() as s:
        store.lock_head(s)
        rows = s.execute(select(HeldResponseRow).where(
            HeldResponseRow.ciphertext.is_not(None), HeldResponseRow.status != "pending",
            HeldResponseRow.created_at < rules.earliest(now))).scalars().all()
        due = [r for r in rows if _utc(r.created_at) < rules.cutoff(r.policy_name, now)]
        rep.held += len(due)
        if rep.dry_run or not due:
            return
        for r in due:
            r.ciphertext = None
        rep.events.append(_seal(store, s, {"purge": "retention", "records": [],
                                           "held_responses": sorted(r.id for r in due)},
                                who, now))


def purge(store: IncidentStore, rules: Retention, now: datetime | None = None,
          who: str = "system", dry_run: bool = False) -> PurgeReport:
    """Remove what is past retention (see the module docstring); ``dry_run``: only count."""
    now = _utc(now or datetime.now(UTC))
    rep = PurgeReport(dry_run=dry_run)
    done = events.purged_records(store)
    for ids in _candidates(store, rules, now, done):
        _purge_batch(store, ids, rules, now, who, rep)
    _purge_held(store, rules, now, who, rep)
    return rep


def cli_purge(args: Any, store: IncidentStore) -> int:
    """``guardrail incidents purge [--dry-run] [--now ISO]``."""
    import getpass

    from guardrail.settings import Settings

    now = datetime.fromisoformat(args.now) if args.now else None
    rules = Retention.from_settings(Settings())
    who = f"cli:{getpass.getuser()}"
    rep = purge(store, rules, now, who=who, dry_run=args.dry_run)
    verb = "would purge" if rep.dry_run else "purged"
    print(f"{verb}: {rep.incidents} incident(s), {rep.held} held response body(ies), "
          f"{rep.redress} redress intake(s); kept {rep.kept_open} past retention that are "
          "still under review or in the lifecycle")
    if rep.events:
        print(f"recorded in the chain as purge event(s) {', '.join(map(str, rep.events))}")
    for problem in rep.refused:
        print(f"  {problem}", file=sys.stderr)
    return 0 if rep.ok else 1
