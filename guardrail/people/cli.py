"""``guardrail users ...`` and ``guardrail keys ...``: people, their tokens, client keys.

Secrets (a person's API token, a client key) are printed once, alone on the last line, and
only their digests are stored. Passwords are read from standard input, never from argv.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from guardrail.people.roles import ROLES


def _stores() -> tuple[Any, Any]:
    from guardrail.db import make_engine, upgrade
    from guardrail.people.keys import ClientKeys
    from guardrail.people.store import PeopleStore
    from guardrail.settings import Settings

    s = Settings()
    engine = make_engine(s.database_url)
    upgrade(s.database_url, engine)
    people = PeopleStore(engine)
    return people, ClientKeys(people)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("error: the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    people, _keys = _stores()
    if args.action == "add":
        p = people.add(args.name, args.role, _read_password() if args.password_stdin else None)
        how = "" if p["password"] else " (no password: API token only)"
        print(f"added {p['name']} as {p['role']}{how}")
    elif args.action == "token":
        p, token = people.new_token(args.name, replace=args.replace)
        print(f"API token for {p['name']} (role {p['role']}); shown once, store it now:")
        print(token)
    elif args.action == "list":
        for p in people.list():
            state = "disabled" if p["disabled"] else "active"
            print(f"{p['name']}\t{p['role']}\t{state}\tpassword={'yes' if p['password'] else 'no'}"
                  f"\ttokens={p['tokens']}\tcreated={p['created_at'][:19]}")
    elif args.action in ("disable", "enable"):
        p = people.set_disabled(args.name, args.action == "disable")
        done = "disabled (signed out, tokens revoked)" if p["disabled"] else "enabled"
        print(f"{p['name']}: {done}")
    elif args.action == "reset":
        p = people.reset_password(args.name, _read_password())
        print(f"{p['name']}: new password set; every session of theirs has ended")
    return 0


def _check_policy(name: str) -> None:
    from guardrail.errors import ConfigError
    from guardrail.policy import PolicySet
    from guardrail.settings import Settings

    s = Settings()
    policies = PolicySet.load(s.policy_dir, list(s.policy_files), s.default_policy, {})
    if name not in policies.policies:
        raise ConfigError(f"no policy named {name!r} (loaded: {sorted(policies.policies)})")


def cmd_keys(args: argparse.Namespace) -> int:
    from guardrail.settings import key_id

    if args.action == "id":
        print(key_id(args.key))
        return 0
    _people, keys = _stores()
    if args.action == "add":
        if args.policy:
            _check_policy(args.policy)
        k, key = keys.add(args.tenant, args.policy)
        print(f"client key {k['id']} for tenant {k['tenant']} (policy "
              f"{k['policy'] or 'default'}); shown once, store it now:")
        print(key)
    elif args.action == "list":
        for k in keys.list():
            state = f"revoked {k['revoked_at'][:19]}" if k["revoked_at"] else "active"
            print(f"{k['id']}\ttenant={k['tenant']}\tpolicy={k['policy'] or '-'}\t{state}"
                  f"\tcreated={k['created_at'][:19]}")
    elif args.action == "revoke":
        k = keys.revoke(args.id)
        print(f"{k['id']}: revoked")
    return 0


def register(sub: Any) -> None:
    u = sub.add_parser("users", help="people who sign in: add, token, list, disable, reset")
    usub = u.add_subparsers(dest="action", required=True)
    ua = usub.add_parser("add", help="add a person")
    ua.add_argument("name")
    ua.add_argument("--role", required=True, choices=ROLES)
    ua.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input (without it: token-only)")
    ut = usub.add_parser("token", help="print a new API token for a person (last line)")
    ut.add_argument("name")
    ut.add_argument("--replace", action="store_true", help="revoke the person's other tokens")
    usub.add_parser("list")
    for action, text in (("disable", "sign out everywhere, revoke tokens, refuse sign-in"),
                         ("enable", "allow sign-in again (revoked tokens stay revoked)")):
        usub.add_parser(action, help=text).add_argument("name")
    ur = usub.add_parser("reset", help="set a new password; ends the person's sessions")
    ur.add_argument("name")
    ur.add_argument("--password-stdin", action="store_true", required=True)
    u.set_defaults(func=cmd_users)

    k = sub.add_parser("keys", help="client keys: add, list, revoke; the id of a key")
    ksub = k.add_subparsers(dest="action", required=True)
    ksub.add_parser("id", help="the key id incidents record for a key").add_argument("key")
    ka = ksub.add_parser("add", help="print a new client key (last line) for a tenant")
    ka.add_argument("--tenant", required=True)
    ka.add_argument("--policy", help="the policy that governs it (default: key_policies / the "
                    "default policy)")
    ksub.add_parser("list")
    ksub.add_parser("revoke").add_argument("id", help="the key id (key_...)")
    k.set_defaults(func=cmd_keys)
