"""``dms table-compare``: the command line (docs/table-compare.md)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from typing import Any

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.jobs.check_cli import ERROR_EXIT, pair_texts, require_parallel, run_check

SHAPE_VERSION = 1
SHOWN = 20  # keys listed per kind in the text output


def add_parser(sub: Any, func: Any) -> None:
    p = sub.add_parser("table-compare", help="compare the rows of tables across PostgreSQL, "
                       "MariaDB/MySQL and SQLite: keys only in A, only in B, and different")
    p.add_argument("pairs", nargs="*", metavar="A:B", help="tables to compare, each "
                   "[db.][schema.]table; db is a --db name")
    p.add_argument("--dsn", help="the database of sides without a db (default: $DMS_DSN)")
    p.add_argument("--db", action="append", default=[], metavar="NAME=URL",
                   help="a database the pairs name (repeatable)")
    p.add_argument("--pairs-file", help="pairs, one A:B per line (# comments); '-' = stdin")
    p.add_argument("--key", help="key columns, comma separated (default: A's primary key)")
    p.add_argument("--parallel", type=int, default=4,
                   help="segments compared at once, per pair (default 4)")
    p.add_argument("--limit", type=int, help="stop a pair after this many differences")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page "
                   "(pairs, and the keys of every difference)")
    p.set_defaults(func=func)


def run(args: argparse.Namespace) -> int:
    return run_check(_run, args)


def _run(args: argparse.Namespace) -> int:
    from dms_pkg.jobs.schema_diff.pairs import parse_dbs, parse_pair

    require_parallel(args)
    if args.limit is not None and args.limit < 1:
        raise DmsError(f"--limit must be 1 or more, not {args.limit}",
                       sqlstate=INVALID_PARAMETER_VALUE, hint="or leave it out: no limit")
    dbs = parse_dbs(args.db)
    default = args.dsn or os.environ.get("DMS_DSN")
    key = [k.strip() for k in args.key.split(",") if k.strip()] if args.key else None
    results = []
    for text in pair_texts(args):
        started = time.monotonic()
        body: dict[str, Any] = {"pair": text.strip(), "status": "error", "error": None}
        try:
            pair = parse_pair(text, dbs)
            body.update(a=pair.a.label, b=pair.b.label)
            body.update(_compare(pair, dbs, default, key, args.parallel, args.limit))
        except Exception as exc:  # one pair's failure is reported; the others go on
            from dms_pkg.jobs.schema_diff.batch import _error

            body["error"] = _error(exc)
        body["seconds"] = round(time.monotonic() - started, 3)
        results.append(body)
    summary = {"pairs": len(results),
               "equal": sum(r["status"] == "equal" for r in results),
               "different": sum(r["status"] == "different" for r in results),
               "errors": sum(r["status"] == "error" for r in results)}
    document = {"kind": "table-compare", "version": SHAPE_VERSION, "pairs": results,
                "summary": summary}
    if args.format == "json":
        print(json.dumps(document, indent=2, default=str))
    else:
        print(_text(results, summary))
    if args.html:
        from dms_pkg.jobs import html_report

        page = html_report.compare_page(json.loads(json.dumps(document, default=str)))
        print(f"page: {html_report.write(args.html, page)}", file=sys.stderr)
    if summary["errors"]:
        return ERROR_EXIT
    return 1 if summary["different"] else 0


def _compare(pair: Any, dbs: Any, default: str | None, key: list[str] | None,
             parallel: int, limit: int | None) -> dict[str, Any]:
    from dms_pkg.jobs.schema_diff.batch import url_opener

    return compare_pair(pair, url_opener(dbs, default), key, parallel, limit)


def compare_pair(pair: Any, opener: Any, key: list[str] | None, parallel: int,
                 limit: int | None) -> dict[str, Any]:
    """One pair's result; ``opener(side)`` opens a connection to a side's database."""
    from dms_pkg.jobs.compare import segments
    from dms_pkg.jobs.schema_diff import catalog

    sides = []
    for side in (pair.a, pair.b):
        with opener(side) as source:
            shape = catalog.read(source, side.schema, side.table)
        sides.append(segments.Side(functools.partial(opener, side), side.schema, side.table,
                                   shape))
    # Both sides named by one database (the same --db name, or both without one).
    same = pair.a.db == pair.b.db
    outcome = segments.compare(sides[0], sides[1], key=key, parallel=parallel, limit=limit,
                               same_database=same)
    return {"status": "different" if outcome.differences else "equal",
            "key": outcome.key, "columns": outcome.columns,
            "rows_a": outcome.rows_a, "rows_b": outcome.rows_b,
            "only_in_a": outcome.only_in_a, "only_in_b": outcome.only_in_b,
            "different": outcome.different, "limited": outcome.limited,
            "method": outcome.method, "segments": outcome.segments}


def _text(results: list[dict[str, Any]], summary: dict[str, int]) -> str:
    out = []
    for r in results:
        what = f"{r['a']} vs {r['b']}" if r.get("b") else r["pair"]
        if r["status"] == "error":
            e = r["error"]
            state = f"[{e['sqlstate']}] " if e.get("sqlstate") else ""
            out.append(f"{what}: error: {state}{e['message']}")
            if e.get("hint"):
                out.append(f"  hint: {e['hint']}")
            continue
        counts = (f"{r['rows_a']:,} rows in A, {r['rows_b']:,} in B, "
                  f"by {', '.join(r['key'])}")
        if r["status"] == "equal":
            out.append(f"{what}: equal ({counts})")
            continue
        out.append(f"{what}: {len(r['only_in_a'])} only in A, {len(r['only_in_b'])} only in B, "
                   f"{len(r['different'])} different ({counts})"
                   + ("; stopped at --limit" if r["limited"] else ""))
        for name in ("only_in_a", "only_in_b", "different"):
            keys = r[name]
            if keys:
                shown = ", ".join(_key_text(k) for k in keys[:SHOWN])
                more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
                out.append(f"  {name.replace('_', ' ')}: {shown}{more}")
    out.append(f"{summary['pairs']} pair{'s' if summary['pairs'] != 1 else ''}: "
               f"{summary['equal']} equal, {summary['different']} different, "
               f"{summary['errors']} could not be compared")
    return "\n".join(out)


def _key_text(key: list[Any]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(str(v) for v in key) + ")"
