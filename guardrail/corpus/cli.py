"""``guardrail corpus add | list | show | update | remove | reindex | compact``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def _registry() -> Any:
    from guardrail.corpus.index import CorpusIndex
    from guardrail.corpus.registry import CorpusRegistry
    from guardrail.corpus.service import index_dir
    from guardrail.db import make_engine, upgrade
    from guardrail.settings import Settings

    s = Settings()
    engine = make_engine(s.database_url)
    upgrade(s.database_url, engine)
    return CorpusRegistry(engine, CorpusIndex.open(index_dir(s)))


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def cmd_corpus(args: argparse.Namespace) -> int:
    from guardrail.corpus.registry import CorpusNotFound
    from guardrail.corpus.service import read_paths

    if args.action in ("show", "remove") and args.corpus is None and args.work is None:
        print("error: name a corpus or --work ID", file=sys.stderr)
        return 1
    reg = _registry()
    try:
        if args.action == "add":
            works = read_paths(args.paths)
            reg.upsert_corpus(args.corpus, args.rights_holder, args.license, args.source_url,
                              args.description)
            t0 = time.perf_counter()
            res = reg.add_works(args.corpus, works)
            out = res.as_dict()
            out["seconds"] = round(time.perf_counter() - t0, 3)
            _print({k: (v if not isinstance(v, list) or len(v) <= 20 else f"{len(v)} works")
                    for k, v in out.items()})
        elif args.action == "list":
            rows = reg.list_corpora()
            for c in rows:
                print(f"{c['name']:<24} works={c['works']:<6} rights_holder={c['rights_holder']!r}"
                      f" license={c['license']!r}")
            st = reg.index.stats()
            print(f"index: {st['windows']} windows, {st['works']} works, {st['segments']} "
                  f"segments at {st['directory']}")
        elif args.action == "show":
            if args.work is not None:
                _print(reg.get_work(args.work, text=args.text))
            else:
                _print(reg.show(args.corpus, limit=args.limit))
        elif args.action == "update":
            _print(reg.upsert_corpus(args.corpus, args.rights_holder, args.license,
                                     args.source_url, args.description))
        elif args.action == "remove":
            if args.work is not None:
                reg.delete_work(args.work)
                print(f"removed work {args.work}")
            else:
                n = reg.delete_corpus(args.corpus)
                print(f"removed corpus {args.corpus} ({n} works)")
        elif args.action == "reindex":
            t0 = time.perf_counter()
            n = reg.reindex()
            print(f"reindexed {n} works in {time.perf_counter() - t0:.1f} s")
        elif args.action == "compact":
            reg.index.compact()
            _print(reg.index.stats())
    except (CorpusNotFound, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add the ``corpus`` command to the ``guardrail`` parser."""
    c = subparsers.add_parser("corpus", help="register third-party IP corpora (near-duplicates)")
    sub = c.add_subparsers(dest="action", required=True)

    add = sub.add_parser("add", help="add text files, directories or JSONL files to a corpus")
    add.add_argument("--corpus", required=True)
    add.add_argument("--rights-holder", help="required when the corpus is new")
    add.add_argument("--license", help="required when the corpus is new")
    add.add_argument("--source-url")
    add.add_argument("--description")
    add.add_argument("paths", nargs="+", help="files, directories, or .jsonl "
                     "({'text', 'title', 'id', 'source_url', ...} per line)")

    sub.add_parser("list", help="list corpora and index size")

    show = sub.add_parser("show", help="a corpus and its works, or one work")
    show.add_argument("corpus", nargs="?")
    show.add_argument("--work", type=int)
    show.add_argument("--text", action="store_true", help="include the work's text")
    show.add_argument("--limit", type=int, default=100)

    upd = sub.add_parser("update", help="change a corpus's metadata")
    upd.add_argument("corpus")
    upd.add_argument("--rights-holder")
    upd.add_argument("--license")
    upd.add_argument("--source-url")
    upd.add_argument("--description")

    rm = sub.add_parser("remove", help="delete a corpus (or one work) and unindex it")
    rm.add_argument("corpus", nargs="?")
    rm.add_argument("--work", type=int)

    sub.add_parser("reindex", help="rebuild the index from the database")
    sub.add_parser("compact", help="merge index segments, dropping deleted works")
    c.set_defaults(func=cmd_corpus)
