"""``dms schema-diff``: the command line over ``batch`` (docs/schema-diff.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from dms_pkg.errors import DmsError
from dms_pkg.jobs.check_cli import pair_texts, progress, require_parallel, run_check
from dms_pkg.jobs.schema_diff.pairs import DEFAULT_DB, Pair, Side, parse_dbs, parse_pair


def add_parser(sub: Any, func: Any) -> None:
    p = sub.add_parser("schema-diff", help="compare tables' columns, types, keys and indexes "
                       "across PostgreSQL, MariaDB/MySQL and SQLite")
    p.add_argument("pairs", nargs="*", metavar="A:B",
                   help="tables to compare, each [db.][schema.]table; db is a --db name")
    p.add_argument("--dsn", help="the database of sides without a db (default: $DMS_DSN)")
    p.add_argument("--db", action="append", default=[], metavar="NAME=URL",
                   help="a database the pairs name: a PostgreSQL connection string, "
                   "mysql://user@host:port/db or sqlite:///path (repeatable)")
    p.add_argument("--pairs-file", help="pairs, one A:B per line (# comments); '-' = stdin")
    p.add_argument("--parallel", type=int, default=4,
                   help="pairs compared at once (default 4, at most twice the cores)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    p.set_defaults(func=func)


def run(args: argparse.Namespace) -> int:
    return run_check(_run, args)


def _run(args: argparse.Namespace) -> int:
    # Loaded here, not at import: `dms --help` builds this parser and must stay fast.
    from dms_pkg.jobs.schema_diff import batch

    require_parallel(args)
    dbs = parse_dbs(args.db)
    default = args.dsn or os.environ.get("DMS_DSN")
    pairs: list[Pair] = []
    refused: dict[int, batch.PairResult] = {}
    for n, text in enumerate(pair_texts(args)):
        try:
            pairs.append(parse_pair(text, dbs))
        except DmsError as exc:  # reported with the others; the batch goes on
            blank = Side(DEFAULT_DB, None, "", text)
            result = batch.PairResult(Pair(text, blank, Side(DEFAULT_DB, None, "", "")))
            result.error = {"sqlstate": exc.sqlstate, "message": exc.message, "hint": exc.hint}
            refused[n] = result
    done = progress(args, len(pairs), "schema-diff")
    results = batch.run(pairs, batch.url_opener(dbs, default), parallel=args.parallel,
                        on_done=done)
    ordered = iter(results)
    everything = [refused[n] if n in refused else next(ordered)
                  for n in range(len(pairs) + len(refused))]
    print(batch.as_json(everything) if args.format == "json" else batch.as_text(everything))
    return batch.exit_code(everything)
