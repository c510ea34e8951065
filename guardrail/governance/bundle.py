"""Signed evidence bundles: ``guardrail incidents export --bundle DIR [--from --to]`` and
``guardrail incidents verify --bundle DIR [--public-key PEM]`` (offline: no database).

A bundle is a folder:

=================== ====================================================================
incidents.jsonl      the incident records of the range, one JSON object a line, in chain
                     order (every column; times in UTC)
events.jsonl         the sealed chain events of the range (decisions, accesses,
                     lifecycle steps, redress answers, purges)
purges.jsonl         sealed purge events from after the range that vouch for records in it
                     (a purged record cannot be recomputed without them)
manifest.json        format, created_at, the range, the chain (first and last sequence
                     number, the hash before the first record, the last hash, the head at
                     export time), counts, each file's SHA-256, bytes and lines, the
                     signer's public key (PEM) and key id
manifest.sig         base64 Ed25519 signature of manifest.json's bytes
=================== ====================================================================

The range is contiguous in the chain: every incident and event from the first record at or
after ``--from`` to the last one before ``--to``, so the records link to each other and the
first one links to the manifest's ``first_prev_hash`` (for a bundle from the start: the
genesis hash). Verify checks the signature (with ``--public-key``: that key; without: the
key in the manifest, which proves integrity but not who signed: compare the key id with
the one you were given), each file's hash, and then the chain inside the bundle with the
same hash functions and the same link walk as ``guardrail incidents verify``
(:func:`guardrail.incidents.store.walk`). An edited, removed or added line, an edited
manifest or a signature by another key fails it.

The signing key: ``GUARDRAIL_BUNDLE_SIGNING_KEY`` (PEM), else a key file generated once
(mode 0600) beside the SQLite database (``GUARDRAIL_BUNDLE_KEY_FILE`` to choose), as the
hold keyring does.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select

from guardrail.db import store_errors
from guardrail.errors import ConfigError
from guardrail.incidents import events
from guardrail.incidents.chain import EVENT_SEALED_FIELDS, GENESIS, event_hash
from guardrail.incidents.events import IncidentEventRow
from guardrail.incidents.models import ChainHead, IncidentRow
from guardrail.incidents.store import IncidentStore, incident_link, row_dict, walk

FORMAT = "guardrail-evidence-bundle/1"
FILES = ("incidents.jsonl", "events.jsonl", "purges.jsonl")


# -- keys -----------------------------------------------------------------------------------

def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "bk_" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _load_private(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"bundle signing key ({source}) is not a PEM private key: {exc}"
                          ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"bundle signing key ({source}) is not an Ed25519 key")
    return key


def signing_key(settings: Any) -> tuple[Ed25519PrivateKey, str]:
    """The key that signs bundles, and where it came from."""
    if settings.bundle_signing_key is not None:
        return _load_private(settings.bundle_signing_key.get_secret_value().encode(),
                             "GUARDRAIL_BUNDLE_SIGNING_KEY"), "GUARDRAIL_BUNDLE_SIGNING_KEY"
    from guardrail.holds.crypto import _default_key_file

    path = settings.bundle_key_file or (
        _default_key_file(settings.database_url).parent / "bundle-signing.pem")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        print(f"generated the bundle signing key {path} (keep it; set "
              "GUARDRAIL_BUNDLE_SIGNING_KEY to use one of your own)", file=sys.stderr)
    return _load_private(path.read_bytes(), str(path)), str(path)


# -- export ---------------------------------------------------------------------------------

def _utc_iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _incident_line(row: IncidentRow) -> dict[str, Any]:
    out = row_dict(row)
    out["created_at"], out["decided_at"] = _utc_iso(row.created_at), _utc_iso(row.decided_at)
    return out


def _event_line(row: IncidentEventRow) -> dict[str, Any]:
    out = {c.name: getattr(row, c.name) for c in IncidentEventRow.__table__.columns}
    out["created_at"] = _utc_iso(row.created_at)
    return out


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode()


def _bound(s: Any, at: datetime, first: bool) -> int | None:
    """The first sequence number at or after ``at`` / the last one before it (None: none)."""
    got: list[int] = []
    for seq, created in ((IncidentRow.seq, IncidentRow.created_at),
                         (IncidentEventRow.seq, IncidentEventRow.created_at)):
        agg = func.min(seq) if first else func.max(seq)
        value = s.execute(select(agg).where(created >= at if first else created < at,
                                            seq.is_not(None))).scalar()
        if value is not None:
            got.append(int(value))
    if not got:
        return None
    return min(got) if first else max(got)


def export(store: IncidentStore, directory: Path, key: Ed25519PrivateKey,
           since: datetime | None = None, until: datetime | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """Write the bundle of records from ``since`` to before ``until``; returns its manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    if any((directory / n).exists() for n in (*FILES, "manifest.json")):
        raise ConfigError(f"{directory} already holds a bundle; choose an empty folder")
    with store_errors(), store.sessions() as s:
        head = s.execute(select(ChainHead).where(ChainHead.id == 1)).scalar_one_or_none()
        head_seq = head.last_seq if head else 0
        lo = (_bound(s, since, True) or head_seq + 1) if since else 1
        hi = min(_bound(s, until, False) or 0, head_seq) if until else head_seq
        incidents = [_incident_line(r) for r in s.execute(
            select(IncidentRow).where(IncidentRow.seq.between(lo, hi))
            .order_by(IncidentRow.seq)).scalars()]
        evs = [_event_line(r) for r in s.execute(
            select(IncidentEventRow).where(IncidentEventRow.seq.between(lo, hi))
            .order_by(IncidentEventRow.seq)).scalars()]
        later = [_event_line(r) for r in s.execute(
            select(IncidentEventRow).where(IncidentEventRow.seq > hi,
                                           IncidentEventRow.seq <= head_seq,
                                           IncidentEventRow.kind == events.PURGE)
            .order_by(IncidentEventRow.seq)).scalars()]
    in_range = {r["seq"] for r in incidents}
    later = [e for e in later if any(seq in in_range for seq, _ in
                                     events.purge_entries(e["note"] or ""))]
    chain = sorted([*incidents, *evs], key=lambda r: r["seq"])
    files: dict[str, Any] = {}
    for name, rows in zip(FILES, (incidents, evs, later), strict=True):
        data = b"".join(_line(r) for r in rows)
        (directory / name).write_bytes(data)
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                       "lines": len(rows)}
    public = key.public_key()
    manifest = {
        "format": FORMAT, "created_at": _utc_iso(now or datetime.now(UTC)),
        "range": {"from": _utc_iso(since), "to": _utc_iso(until)},
        "chain": {"first_seq": chain[0]["seq"] if chain else lo,
                  "last_seq": chain[-1]["seq"] if chain else lo - 1,
                  "first_prev_hash": chain[0]["prev_hash"] if chain else None,
                  "last_hash": chain[-1]["record_hash"] if chain else None,
                  "head": {"last_seq": head_seq, "last_hash": head.last_hash if head else GENESIS,
                           "count": head.count if head else 0}},
        "counts": {"incidents": len(incidents), "events": len(evs),
                   "purge_events_after": len(later)},
        "files": files, "public_key": public_pem(public), "key_id": key_id(public)}
    body = json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True).encode() + b"\n"
    (directory / "manifest.json").write_bytes(body)
    (directory / "manifest.sig").write_bytes(base64.b64encode(key.sign(body)) + b"\n")
    return manifest


# -- verify (offline) -----------------------------------------------------------------------

@dataclass
class BundleReport:
    ok: bool
    checked: int
    problems: list[str]
    notes: list[str] = field(default_factory=list)
    key_id: str | None = None


def _read_lines(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            problems.append(f"{path.name} line {n}: not JSON")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int):
            problems.append(f"{path.name} line {n}: not a chain record")
            continue
        out.append(obj)
    return out


def _links(rows: list[dict[str, Any]], purged: dict[int, events.Purged] | None,
           problems: list[str]) -> Iterator[events.Link]:
    """Incident lines (``purged`` given) or event lines as links; a line that cannot even be
    read as one (a field removed, a time garbled) is a problem, not a crash."""
    for r in rows:
        try:
            if purged is not None:
                yield incident_link(r, purged.get(r["seq"]))
                continue
            fields = {k: r[k] for k in EVENT_SEALED_FIELDS}
            fields["created_at"] = datetime.fromisoformat(str(r["created_at"])).astimezone(UTC)
            prev = str(r["prev_hash"])
            yield events.Link(r["seq"], f"event {r['seq']} ({r['kind']} on {r['incident_id']})",
                              prev, str(r["record_hash"]), event_hash(prev, fields))
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"record {r.get('seq')}: not a complete chain record ({exc!r})")


def _signature(directory: Path, manifest_bytes: bytes, public_key: Path | None,
               manifest: dict[str, Any], rep: BundleReport) -> None:
    try:
        if public_key is not None:
            key = serialization.load_pem_public_key(public_key.read_bytes())
        else:
            key = serialization.load_pem_public_key(str(manifest.get("public_key")).encode())
            rep.notes.append("signature checked against the key in the manifest itself: this "
                             "proves the bundle is unchanged since it was signed, not who signed "
                             "it; compare the key id with the signer's")
    except (ValueError, TypeError) as exc:
        rep.problems.append(f"public key unreadable: {exc}")
        return
    if not isinstance(key, Ed25519PublicKey):
        rep.problems.append("public key is not an Ed25519 key")
        return
    rep.key_id = key_id(key)
    if manifest.get("key_id") != rep.key_id:
        rep.problems.append(f"manifest names signer {manifest.get('key_id')!r}, the key "
                            f"given is {rep.key_id}")
    try:
        key.verify(base64.b64decode((directory / "manifest.sig").read_bytes().strip()),
                   manifest_bytes)
    except (InvalidSignature, ValueError, OSError):
        rep.problems.append("manifest signature does not verify (manifest edited, or signed "
                            "by another key)")


def verify(directory: Path, public_key: Path | None = None) -> BundleReport:
    rep = BundleReport(ok=False, checked=0, problems=[])
    try:
        manifest_bytes = (directory / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
    except (OSError, ValueError) as exc:
        rep.problems.append(f"manifest.json unreadable: {exc}")
        return rep
    _signature(directory, manifest_bytes, public_key, manifest, rep)
    if manifest.get("format") != FORMAT:
        rep.problems.append(f"unknown bundle format {manifest.get('format')!r}")
    listed = manifest.get("files") or {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for name in FILES:
        path, want = directory / name, listed.get(name)
        if want is None or not path.exists():
            rep.problems.append(f"{name}: {'not in the manifest' if want is None else 'missing'}")
            rows[name] = []
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != want.get("sha256"):
            rep.problems.append(f"{name}: SHA-256 differs from the manifest's (file changed)")
        rows[name] = _read_lines(path, rep.problems)
        if len(rows[name]) != want.get("lines"):
            rep.problems.append(f"{name}: {len(rows[name])} records, the manifest says "
                                f"{want.get('lines')}")
    _chain(manifest.get("chain") or {}, rows, rep)
    rep.ok = not rep.problems
    return rep


def _chain(chain: dict[str, Any], rows: dict[str, list[dict[str, Any]]],
           rep: BundleReport) -> None:
    purged: dict[int, events.Purged] = {}
    supporting = [r for r in rows["purges.jsonl"] if r.get("kind") == events.PURGE]
    if len(supporting) != len(rows["purges.jsonl"]):
        rep.problems.append("purges.jsonl holds records that are not purge events")
    for r in supporting:
        for link in _links([r], None, rep.problems):
            if link.computed_hash != link.stored_hash:
                rep.problems.append(f"purges.jsonl: {link.label}: content does not match its "
                                    "hash")
            else:
                purged.update(events.purge_entries(r.get("note") or ""))
    for r in rows["events.jsonl"]:
        if r.get("kind") == events.PURGE:
            purged.update(events.purge_entries(r.get("note") or ""))
    first = int(chain.get("first_seq") or 1)
    start = chain.get("first_prev_hash") or GENESIS
    if first == 1 and start != GENESIS:
        rep.problems.append("the chain starts at record 1 but not from the genesis hash")
    problems, checked, last_hash, next_seq = walk(heapq.merge(
        _links(rows["incidents.jsonl"], purged, rep.problems),
        _links(rows["events.jsonl"], None, rep.problems), key=lambda x: x.seq), start, first)
    rep.problems.extend(problems)
    rep.checked = checked
    if next_seq - 1 != chain.get("last_seq") or (checked and last_hash != chain.get("last_hash")):
        rep.problems.append(f"the bundle ends at record {next_seq - 1}, the manifest says "
                            f"{chain.get('last_seq')} (records removed from the end?)")
    head = chain.get("head") or {}
    if chain.get("last_seq") == head.get("last_seq") and checked and \
            last_hash != head.get("last_hash"):
        rep.problems.append("the last record is not the chain head the manifest names")


# -- command line ---------------------------------------------------------------------------

def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cli_export(args: Any, store: IncidentStore) -> int:
    from guardrail.settings import Settings

    key, source = signing_key(Settings())
    m = export(store, Path(args.bundle), key, _when(args.since), _when(args.until))
    c = m["chain"]
    print(f"bundle {args.bundle}: {m['counts']['incidents']} incidents, "
          f"{m['counts']['events']} events (records {c['first_seq']}..{c['last_seq']} of "
          f"{c['head']['last_seq']}), signed by {m['key_id']} ({source})")
    print("the signer's public key (give it to whoever verifies, apart from the bundle):")
    print(m["public_key"], end="")
    print(f"verify with: guardrail incidents verify --bundle {args.bundle} --public-key FILE")
    return 0


def cli_verify(args: Any) -> int:
    rep = verify(Path(args.bundle), Path(args.public_key) if args.public_key else None)
    for note in rep.notes:
        print(f"note: {note}")
    if rep.ok:
        print(f"OK: bundle {args.bundle}: {rep.checked} records, chain intact, signed by "
              f"{rep.key_id}")
        return 0
    print(f"TAMPERED: bundle {args.bundle}: {len(rep.problems)} problem(s)", file=sys.stderr)
    for p in rep.problems:
        print(f"  {p}", file=sys.stderr)
    return 1
