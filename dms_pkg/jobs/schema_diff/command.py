"""``dms schema-diff``: the command line over ``batch`` (docs/schema-diff.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.jobs.schema_diff.pairs import DEFAULT_DB, Pair, Side, lines, parse_dbs, parse_pair

ERROR_EXIT = 2


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
    try:
        return _run(args)
    except DmsError as exc:
        print(f"dms: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"HINT: {exc.hint}", file=sys.stderr)
        return ERROR_EXIT


def _texts(args: argparse.Namespace) -> list[str]:
    texts = [t for t in args.pairs if t.strip()]
    if args.pairs_file == "-" or (not texts and not args.pairs_file and not sys.stdin.isatty()):
        texts += lines(sys.stdin)
    elif args.pairs_file:
        try:
            with open(args.pairs_file, encoding="utf-8") as stream:
                texts += lines(stream)
        except OSError as exc:
            raise DmsError(f"cannot read --pairs-file {args.pairs_file}: {exc.strerror}",
                           sqlstate="58030", hint="give a readable file, or - for stdin") from None
    if not texts:
        raise DmsError("no pairs to compare", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give A:B pairs as arguments, in --pairs-file, or on stdin")
    return texts


def _run(args: argparse.Namespace) -> int:
    # Loaded here, not at import: `dms --help` builds this parser and must stay fast.
    from dms_pkg.jobs.schema_diff import batch

    if not 1 <= args.parallel <= 64:
        raise DmsError(f"--parallel must be from 1 to 64, not {args.parallel}",
                       sqlstate=INVALID_PARAMETER_VALUE, hint="for example --parallel 4")
    dbs = parse_dbs(args.db)
    default = args.dsn or os.environ.get("DMS_DSN")
    pairs: list[Pair] = []
    refused: dict[int, batch.PairResult] = {}
    for n, text in enumerate(_texts(args)):
        try:
            pairs.append(parse_pair(text, dbs))
        except DmsError as exc:  # reported with the others; the batch goes on
            blank = Side(DEFAULT_DB, None, "", text)
            result = batch.PairResult(Pair(text, blank, Side(DEFAULT_DB, None, "", "")))
            result.error = {"sqlstate": exc.sqlstate, "message": exc.message, "hint": exc.hint}
            refused[n] = result
    done = _progress(args, len(pairs))
    results = batch.run(pairs, batch.url_opener(dbs, default), parallel=args.parallel,
                        on_done=done)
    ordered = iter(results)
    everything = [refused[n] if n in refused else next(ordered)
                  for n in range(len(pairs) + len(refused))]
    print(batch.as_json(everything) if args.format == "json" else batch.as_text(everything))
    return batch.exit_code(everything)


def _progress(args: argparse.Namespace, total: int) -> Any:
    if not args.progress:
        return lambda result: None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task("schema-diff", total=total)
    bar.start()

    def done(result: Any) -> None:
        bar.advance(task)
        if bar.finished:
            bar.stop()
    return done
