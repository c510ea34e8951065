"""``guardrail holds ...``: the keyring that encrypts held responses, and their state.

* ``keygen`` prints a new Fernet key (put it first in ``GUARDRAIL_HOLD_KEYS``);
* ``rotate`` re-encrypts every stored body under the first key (then the old key can go);
* ``list`` shows held responses (ids, status, tenant, expiry; never their content).
"""

from __future__ import annotations

import argparse
from typing import Any


def _holds() -> Any:
    from guardrail.cli import _store
    from guardrail.holds.crypto import Keyring
    from guardrail.holds.store import HoldStore
    from guardrail.settings import Settings

    return HoldStore(_store(), Keyring.from_settings(Settings()))


def cmd_holds(args: argparse.Namespace) -> int:
    if args.action == "keygen":
        from cryptography.fernet import Fernet

        print(Fernet.generate_key().decode())
        return 0
    holds = _holds()
    if args.action == "rotate":
        n = holds.rotate()
        print(f"re-encrypted {n} held response(s) under {holds.keyring.current}")
        return 0
    from sqlalchemy import select

    from guardrail.holds.models import HeldResponseRow

    with holds.store.sessions() as s:
        rows = s.execute(select(HeldResponseRow).order_by(HeldResponseRow.created_at.desc())
                         .limit(args.limit)).scalars().all()
    for r in rows:
        print(f"{r.id}  {r.status:<8}  tenant={r.tenant}  expires={r.expires_at.isoformat()}  "
              f"incidents={','.join(r.incident_ids or [])}  key={r.key_id}")
    return 0


def register(sub: Any) -> None:
    h = sub.add_parser("holds", help="held responses: keys, rotation, list")
    hs = h.add_subparsers(dest="action", required=True)
    hs.add_parser("keygen", help="print a new key for GUARDRAIL_HOLD_KEYS")
    hs.add_parser("rotate", help="re-encrypt every held body under the first key")
    hl = hs.add_parser("list")
    hl.add_argument("--limit", type=int, default=50)
    h.set_defaults(func=cmd_holds)
