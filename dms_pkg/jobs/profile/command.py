"""``dms profile``: the command line over ``batch`` (docs/profile.md)."""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.jobs.check_cli import progress, require_parallel, run_check


def add_parser(sub: Any, func: Any) -> None:
    p = sub.add_parser("profile", help="column metrics of tables (PostgreSQL, MariaDB/MySQL, "
                       "SQLite), in parallel, kept in DMS tables for drift")
    p.add_argument("tables", nargs="*", metavar="TABLE",
                   help="[db.][schema.]table; db is a --db name (default: the --dsn database)")
    p.add_argument("--dsn", help="where dms is installed and the profiles are kept, and the "
                   "database of tables without a db (default: $DMS_DSN)")
    p.add_argument("--db", action="append", default=[], metavar="NAME=URL",
                   help="a database the tables name (repeatable)")
    p.add_argument("--parallel", type=int, default=4,
                   help="tables profiled at once (default 4, at most twice the cores; SQLite "
                   "one at a time)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr")
    p.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page "
                   "(per-table summary, per-column histograms)")
    p.add_argument("--no-store", action="store_true", help="do not keep the profile in the "
                   "--dsn database's DMS tables")
    p.set_defaults(func=func)


def run(args: argparse.Namespace) -> int:
    return run_check(_run, args)


def _run(args: argparse.Namespace) -> int:
    from dms_pkg.jobs.profile import batch
    from dms_pkg.jobs.schema_diff.pairs import lines, parse_dbs, parse_side

    require_parallel(args)
    dbs = parse_dbs(args.db)
    default = args.dsn or os.environ.get("DMS_DSN")
    texts = [t for t in args.tables if t.strip()]
    if not texts and not sys.stdin.isatty():
        texts = lines(sys.stdin)
    if not texts:
        raise DmsError("no tables to profile", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give [db.][schema.]table names as arguments or on stdin")
    if not args.no_store and not default:
        raise DmsError("profiles are kept in the --dsn database, and there is none",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give --dsn (where dms is installed), or --no-store")
    sides = [parse_side(t, dbs) for t in texts]
    started = datetime.datetime.now(datetime.UTC)
    from dms_pkg.jobs.schema_diff.batch import url_opener

    results = batch.run(sides, url_opener(dbs, default), parallel=args.parallel,
                        on_done=progress(args, len(sides), "profile"))
    profile_id = None if args.no_store else batch.record(str(default), results, started)
    print(batch.as_json(results, profile_id) if args.format == "json"
          else batch.as_text(results, profile_id))
    if args.html:
        import json

        from dms_pkg.jobs import html_report

        page = html_report.profile_page(json.loads(batch.as_json(results, profile_id)))
        print(f"page: {html_report.write(args.html, page)}", file=sys.stderr)
    return batch.exit_code(results)
