"""The ``guardrail`` command line."""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import socket
import sys
from pathlib import Path
from typing import Any

from guardrail.errors import ConfigError, GuardrailError


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(a[4][0]).is_loopback
                       for a in socket.getaddrinfo(host, None))
        except OSError:
            return False


def cmd_db(args: argparse.Namespace) -> int:
    from guardrail.db import current_revision, head_revision, make_engine, upgrade
    from guardrail.settings import Settings

    s = Settings()
    engine = make_engine(s.database_url)
    try:
        if args.action == "upgrade":
            before = current_revision(engine)
            upgrade(s.database_url, engine)
            print(f"schema: {before or 'none'} -> {current_revision(engine)}")
            return 0
        have, want = current_revision(engine), head_revision()
        print(f"schema: {have or 'none'} (latest {want})")
        return 0 if have == want else 1
    finally:
        engine.dispose()


def _serve_workers(settings: Any, workers: int) -> int:
    """N uvicorn workers, each building its own app (models loaded once per worker) from the
    environment: the schema is migrated once here, workers only check it; metrics are
    aggregated across workers (Prometheus multiprocess mode)."""
    import os
    import tempfile

    import uvicorn

    from guardrail.db import make_engine, upgrade

    if settings.auto_migrate:
        engine = make_engine(settings.database_url)
        upgrade(settings.database_url, engine)
        engine.dispose()
    env = {"GUARDRAIL_AUTO_MIGRATE": "false", "GUARDRAIL_HOST": settings.host,
           "GUARDRAIL_PORT": str(settings.port)}
    if settings.policy_files:
        env["GUARDRAIL_POLICY_FILES"] = ",".join(str(p) for p in settings.policy_files)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="guardrail-metrics-")
    os.environ.update(env)
    uvicorn.run("guardrail.app:worker_app", factory=True, host=settings.host,
                port=settings.port, workers=workers, log_level=settings.log_level,
                access_log=False, log_config=None)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from guardrail.app import create_app
    from guardrail.settings import Settings

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.policy:
        overrides["policy_files"] = [Path(p) for p in args.policy]
    settings = Settings(**overrides)
    from guardrail import logs

    logs.configure(settings.log_format, settings.log_level)  # JSON lines unless told otherwise
    if settings.dev_mode and not _is_loopback(settings.host) and not _store_has_keys():
        print(f"refusing to bind {settings.host}: no client keys (GUARDRAIL_API_KEYS or "
              "`guardrail keys add`). Add one, or bind a loopback address (127.0.0.1) for dev "
              "mode.", file=sys.stderr)
        return 2
    if args.workers and args.workers > 1:
        return _serve_workers(settings, args.workers)
    app = create_app(settings)
    # log_config=None: uvicorn's lines go through our handler; the access log is guardrail's own
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, log_config=None)
    return 0


def _store_has_keys() -> bool:
    """Client keys in the store (``guardrail keys add``) end dev mode as configured ones do."""
    from guardrail.people.keys import ClientKeys
    from guardrail.people.store import PeopleStore

    return ClientKeys(PeopleStore(_store().engine)).any_live()


def _store() -> Any:
    from guardrail.db import make_engine, upgrade
    from guardrail.incidents.store import IncidentStore
    from guardrail.settings import Settings

    s = Settings()
    engine = make_engine(s.database_url)
    upgrade(s.database_url, engine)
    return IncidentStore(engine)


def cmd_incidents(args: argparse.Namespace) -> int:
    if args.action == "verify" and args.bundle:  # offline: no database
        from guardrail.governance import bundle

        return bundle.cli_verify(args)
    store = _store()
    if args.action == "purge":
        from guardrail.governance import retention

        return retention.cli_purge(args, store)
    if args.action == "export" and args.bundle:
        from guardrail.governance import bundle

        return bundle.cli_export(args, store)
    if args.action == "list":
        filters = {"action": args.filter_action, "scanner": args.scanner,
                   "category": args.category, "policy_name": args.policy}
        for r in store.list(limit=args.limit, filters=filters):
            print(f"{r['id']}  {r['created_at']}  {r['action']:<6} {r['kind']:<15} "
                  f"{r['scanner'] or '-'}:{r['category'] or '-'}  policy={r['policy_name']}"
                  f"@{r['policy_version']}  req={r['request_id']}")
        return 0
    if args.action == "show":
        row = store.get(args.id)
        if row is None:
            print(f"no incident {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(row, indent=2, ensure_ascii=False, default=str))
        return 0
    if args.action == "export":
        out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
        try:
            if args.format == "jsonl":
                for r in store.iter_all():
                    out.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
            else:
                writer: Any = None
                for r in store.iter_all():
                    flat = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list)
                            else v for k, v in r.items()}
                    if writer is None:
                        writer = csv.DictWriter(out, fieldnames=list(flat))
                        writer.writeheader()
                    writer.writerow(flat)
        finally:
            if out is not sys.stdout:
                out.close()
        return 0
    if args.action == "verify":
        rep = store.verify()
        for note in rep.notes:
            print(f"note: {note}")
        if rep.ok:
            print(f"OK: {rep.checked} records, chain intact (incidents and review events)")
            return 0
        print(f"TAMPERED: {len(rep.problems)} problem(s) in {rep.checked} records",
              file=sys.stderr)
        for p in rep.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 2


def cmd_policy(args: argparse.Namespace) -> int:
    from guardrail.policy import load_policy_file, policy_json_schema

    if args.action == "schema":
        print(json.dumps(policy_json_schema(), indent=2, ensure_ascii=False))
        return 0
    ok = True
    for f in args.files:
        try:
            p = load_policy_file(f)
            print(f"{f}: OK (name={p.name} version={p.version} scanners="
                  f"{[s.instance_name for s in p.scanners]})")
        except ConfigError as exc:
            ok = False
            print(str(exc), file=sys.stderr)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="guardrail", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the proxy")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--policy", action="append", help="policy file (repeatable); the last one "
                   "is the default unless GUARDRAIL_DEFAULT_POLICY names another")
    s.add_argument("--workers", type=int, default=1, help="worker processes (each loads the "
                   "models once; the schema is migrated once before they start)")
    s.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="the database schema (Alembic)")
    dsub = db.add_subparsers(dest="action", required=True)
    dsub.add_parser("upgrade", help="migrate to the latest schema (run once before workers)")
    dsub.add_parser("current", help="the schema's revision; exit 1 unless it is the latest")
    db.set_defaults(func=cmd_db)

    i = sub.add_parser("incidents", help="list, show, export and verify incident records")
    isub = i.add_subparsers(dest="action", required=True)
    il = isub.add_parser("list")
    il.add_argument("--limit", type=int, default=50)
    il.add_argument("--action", dest="filter_action")
    il.add_argument("--scanner")
    il.add_argument("--category")
    il.add_argument("--policy")
    ish = isub.add_parser("show")
    ish.add_argument("id")
    ie = isub.add_parser("export")
    ie.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    ie.add_argument("--output", "-o")
    ie.add_argument("--bundle", metavar="DIR", help="write a signed evidence bundle (JSONL "
                    "of incidents and chain events, manifest with hashes, Ed25519 signature)")
    ie.add_argument("--from", dest="since", metavar="ISO", help="bundle: records from then")
    ie.add_argument("--to", dest="until", metavar="ISO", help="bundle: records before then")
    iv = isub.add_parser("verify", help="check the tamper-evident hash chain")
    iv.add_argument("--bundle", metavar="DIR", help="verify an evidence bundle offline")
    iv.add_argument("--public-key", metavar="PEM", help="the bundle signer's public key file")
    ip = isub.add_parser("purge", help="remove content and personal data past retention "
                         "(the chain still verifies; the purge is recorded in it)")
    ip.add_argument("--dry-run", action="store_true", help="count, change nothing")
    ip.add_argument("--now", metavar="ISO", help="purge as if it were then")
    i.set_defaults(func=cmd_incidents)

    pol = sub.add_parser("policy", help="check policies, print the JSON Schema")
    psub = pol.add_subparsers(dest="action", required=True)
    pc = psub.add_parser("check")
    pc.add_argument("files", nargs="+")
    psub.add_parser("schema")
    pol.set_defaults(func=cmd_policy)

    from guardrail.people import cli as people_cli

    people_cli.register(sub)  # users, keys

    for mod in ("guardrail.corpus.cli", "guardrail.labelling.cli", "guardrail.holds.cli",
                "guardrail.governance.cli"):
        _register_optional(sub, mod)
    return p


def _register_optional(sub: Any, module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module).register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from guardrail.db import dispose_all

    try:
        return int(args.func(args))
    except GuardrailError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.func is not cmd_serve:  # the server disposes its own at shutdown
            dispose_all()


if __name__ == "__main__":
    raise SystemExit(main())
