"""``guardrail pki init`` and ``guardrail verify FILE``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_pki(args: argparse.Namespace) -> int:
    from guardrail.labelling.pki import init_dev_pki
    from guardrail.labelling.settings import C2paSettings

    directory = Path(args.dir) if args.dir else C2paSettings().dev_pki_dir
    paths = init_dev_pki(directory, force=args.force)
    verb = "created" if paths.created else "already present (use --force to replace)"
    print(f"development PKI {verb} in {paths.directory}")
    print(f"  CA certificate (trust anchor): {paths.ca}")
    print(f"  signer chain (leaf first):     {paths.chain}")
    print(f"  signer key (mode 0600):        {paths.key}")
    print("This is a DEVELOPMENT CA: images it signs are trusted only by verifiers given the CA")
    print("certificate as a trust anchor. To use it explicitly:")
    print(f"  export GUARDRAIL_C2PA_CERT={paths.chain} GUARDRAIL_C2PA_KEY={paths.key}")
    print(f"  export GUARDRAIL_C2PA_TRUST_ANCHORS={paths.ca}")
    return 0


def _anchors(args: argparse.Namespace) -> bytes:
    from guardrail.labelling.settings import C2paSettings
    from guardrail.labelling.signer import read_anchors

    s = C2paSettings()
    files: list[Any] = list(args.anchors or [])
    if not files and s.trust_anchors:
        files.append(s.trust_anchors)
    dev_ca = s.dev_pki_dir / "ca.pem"
    if not args.no_dev_ca and not s.has_key and dev_ca.is_file():
        files.append(dev_ca)
    return read_anchors(*files)


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0: Trusted; 1: Valid but untrusted, Invalid, or no manifest; 2: unreadable."""
    from guardrail.labelling.c2pa_images import verify_image

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    anchors = _anchors(args)
    v = verify_image(data, anchors)
    if args.json:
        print(json.dumps(v.as_dict(), indent=2, ensure_ascii=False, default=str))
    elif not v.has_manifest:
        print(f"{args.file}: no C2PA manifest" + (f" ({v.error})" if v.error else ""))
    else:
        print(f"{args.file}: {v.state}  ({anchors.count(b'BEGIN CERTIFICATE')} trust anchors)")
        if v.signer:
            print(f"  signed by: {v.signer.get('common_name')} (issuer {v.signer.get('issuer')})")
        print(f"  actions: {', '.join(a for a in v.actions if a) or '-'}")
        print(f"  digital source type: {v.digital_source_type or '-'}")
        print(f"  software agent: {v.software_agent or '-'}")
        if v.guardrail:
            g = v.guardrail
            print(f"  guardrail: policy {g.get('policy')}@{g.get('policy_version')} "
                  f"request {g.get('request_id')}")
        for p in v.problems:
            print(f"  problem: {p.get('code')}: {p.get('explanation', '')}")
    return 0 if v.trusted else 1


def register(subparsers: Any) -> None:
    """Add ``pki`` and ``verify`` to the ``guardrail`` command line."""
    pki = subparsers.add_parser("pki", help="manage the C2PA signing PKI")
    psub = pki.add_subparsers(dest="action", required=True)
    init = psub.add_parser("init", help="create a local development CA and signer certificate")
    init.add_argument("--dir", help="output directory (default GUARDRAIL_C2PA_DEV_PKI_DIR or "
                      ".guardrail/pki)")
    init.add_argument("--force", action="store_true", help="replace an existing PKI")
    pki.set_defaults(func=cmd_pki)

    ver = subparsers.add_parser("verify", help="read and validate an image's C2PA manifest")
    ver.add_argument("file")
    ver.add_argument("--anchors", action="append", metavar="PEM",
                     help="trust anchor PEM file (repeatable; default "
                     "GUARDRAIL_C2PA_TRUST_ANCHORS, plus the development CA if present)")
    ver.add_argument("--no-dev-ca", action="store_true",
                     help="do not trust the development CA under .guardrail/pki")
    ver.add_argument("--json", action="store_true", help="print the full result as JSON")
    ver.set_defaults(func=cmd_verify)
