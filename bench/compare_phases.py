"""Where ``dms table-compare``'s time goes on compare_bench.py's tables: its queries one by one.

    .venv/bin/python bench/compare_phases.py [--rows 2000000] [--parallel 2]

Run after ``bench/compare_bench.py`` (same ``--rows``): it reads the tables
that benchmark made (PostgreSQL and MariaDB database ``dms_bench_cmp``,
``orders_a``, ``orders_b``, ``orders_b_changed``) and changes nothing.  It
logs in as the sandbox's superuser over the socket (PostgreSQL) and as the OS
user over the socket (MariaDB): the SQL is what matters here, not the login.

With the SQL dms itself renders (``dms_pkg.jobs.compare.segments._Queries``)
it times, one query at a time on one connection, each phase of a compare:
the row count of A, the boundary keys of A (the window-function query),
the checksum of a whole table in one query (the work of all top segments
together, without parallelism) on PostgreSQL and MariaDB, one top
segment's checksum, one middle-key query and one 2,000-row (key, hash)
fetch.  It also replays dms's bisection over the benchmark's key layout
(ids 1..rows, the 100 changed ids) to count how many rows each side hashes
in the changed case -- against data-diff's hashdiff (bisection factor 32,
threshold 16384) on the same layout.

Output: markdown on stdout and in ``bench/results/compare-phases-latest.md``.
"""

from __future__ import annotations

import argparse
import getpass
import itertools
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from compare_bench import DB, changed_ids

from dms_pkg.db.sources import SourceConnection, open_source
from dms_pkg.jobs.compare import segments
from dms_pkg.jobs.schema_diff import catalog
from dms_pkg.sandbox import Sandbox

RESULTS = Path(__file__).resolve().parent / "results"


def timed(source: SourceConnection, query: str, params: dict[str, Any] | None = None
          ) -> tuple[float, list[tuple[Any, ...]]]:
    started = time.monotonic()
    rows = source.fetch(query, params or {})
    return time.monotonic() - started, rows


def bisect_rows(rows: int, changed: set[int], top: int, factor: int, threshold: int
                ) -> tuple[int, int, int]:
    """(rows hashed per side, segments checked, rows fetched per side) of a bisection over
    dense ids 1..rows: ``top`` first segments, unequal ones cut in ``factor`` parts until a
    segment holds at most ``threshold`` rows, then its rows are fetched."""
    step = -(-rows // top)
    pending = [(lo, min(rows + 1, lo + step)) for lo in range(1, rows + 1, step)]
    hashed = checked = fetched = 0
    while pending:
        lo, hi = pending.pop()
        size = hi - lo
        hashed += size  # every segment visited is checksummed on both sides first
        checked += 1
        if not any(lo <= i < hi for i in changed):
            continue
        if size <= threshold:
            fetched += size
            continue
        cut = -(-size // factor)
        pending += [(a, min(hi, a + cut)) for a in range(lo, hi, cut)]
    return hashed, checked, fetched


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--replay-only", action="store_true",
                        help="only the bisection replay (no database, no query timed)")
    args = parser.parse_args()
    box = Sandbox.default()
    pg_url = box.dsn(DB)
    my_url = f"mysql://{getpass.getuser()}@localhost/{DB}?unix_socket={box.mariadb.socket}"
    lines = ["# Where dms table-compare's time goes (compare_bench.py's tables)", "",
             f"`.venv/bin/python bench/compare_phases.py --rows {args.rows}"
             f" --parallel {args.parallel}" + (" --replay-only`" if args.replay_only else
                                              "`: each query alone, one connection, warm cache."),
             "",
             "| phase | database | rows | seconds | rows/s |", "|---|---|---|---|---|"]
    top = max(1, args.parallel * segments.SEGMENTS_PER_WORKER)
    if args.replay_only:
        lines = lines[:4]
    with ExitStack() as stack:
        if args.replay_only:
            stack.close()  # nothing to time
            return finish(args, lines, top)
        pg = stack.enter_context(open_source(pg_url))
        my = stack.enter_context(open_source(my_url))
        segments._prepare(my)
        shapes = {(d, t): catalog.read(src, None if d == "my" else "public", t)
                  for d, src in (("pg", pg), ("my", my))
                  for t in (("orders_a",) if d == "my" else ("orders_a", "orders_b"))}
        queries: dict[tuple[str, str], segments._Queries] = {}
        sides: list[tuple[str, str]] = [("pg", "orders_a"), ("my", "orders_a")]
        for side in sides:  # each against PG's orders_b
            key, columns = segments.common_columns(shapes[side], shapes[("pg", "orders_b")],
                                                   ["id"])
            queries[side] = segments._Queries(
                segments.Side(lambda: open_source(pg_url), None if side[0] == "my" else "public",
                              side[1], shapes[side]), key, columns)
        count = args.rows
        step = max(segments.ROW_THRESHOLD, -(-count // top))

        def row(phase: str, where: str, n: int, seconds: float) -> None:
            lines.append(f"| {phase} | {where} | {n:,} | {seconds:.2f} |"
                         f" {n / max(seconds, 1e-6):,.0f} |")
            print(lines[-1], file=sys.stderr)

        for name, src, q in (("PostgreSQL", pg, queries[("pg", "orders_a")]),
                             ("MariaDB", my, queries[("my", "orders_a")])):
            s, _ = timed(src, f"SELECT COUNT(*) FROM {q.table}")
            row("COUNT(*) of A", name, count, s)
            s, edges = timed(src, q.boundaries(step))
            row(f"boundary keys of A (every {step:,}th, window function)", name, count, s)
            s, _ = timed(src, q.checksum())
            row("checksum of the whole table, one query", name, count, s)
            bounds = [None, *[tuple(e) for e in edges], None]
            lo, hi = list(itertools.pairwise(bounds))[1]
            where, params = q.where(lo, hi)
            s, _ = timed(src, q.checksum() + where, params)
            row("checksum of one top segment", name, step, s)
            where, params = q.where((1,), (1 + segments.ROW_THRESHOLD,))
            s, _ = timed(src, q.rows() + where, params)
            row(f"(key, hash) rows of a {segments.ROW_THRESHOLD:,}-row segment", name,
                segments.ROW_THRESHOLD, s)
            where, params = q.where(lo, hi)
            s, _ = timed(src, f"{q.middle()}{where} ORDER BY {q.key_list} LIMIT 1 OFFSET"
                              f" {step // 2}", params)
            row("middle key of a top segment (ORDER BY LIMIT 1 OFFSET)", name, step // 2, s)
    return finish(args, lines, top)


def finish(args: argparse.Namespace, lines: list[str], top: int) -> int:
    changed = set(changed_ids(args.rows))
    dms = bisect_rows(args.rows, changed, top, 2, segments.ROW_THRESHOLD)
    dd = bisect_rows(args.rows, changed, 32, 32, 16384)
    lines += ["", f"Bisection replayed on ids 1..{args.rows:,} with the {len(changed)} changed"
              " ids (per side):", "",
              "| tool | first segments | split into | rows hashed | segments checksummed |"
              " rows fetched as (key, hash) |", "|---|---|---|---|---|---|",
              f"| dms | {top} | 2 (at the middle key) | {dms[0]:,} ({dms[0] / args.rows:.1f}x the"
              f" table) | {dms[1]:,} | {dms[2]:,} |",
              f"| data-diff hashdiff | 32 | 32 | {dd[0]:,} ({dd[0] / args.rows:.1f}x the table)"
              f" | {dd[1]:,} | {dd[2]:,} |", ""]
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare-phases-latest.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
