"""Planning time of the chunk planner on a 2M-row orders table (issue: target <= 1 s).

    .venv/bin/python bench/plan_bench.py [--rows 2000000] [--runs 5]

Runs on the project's own cluster (started if needed), in database
``dms_bench``; the table is generated once and reused.  Each case plans the
same query the way a run would (catalog look-up, statistics, boundaries,
rewriting every chunk) and reports the median wall time of ``--runs``.
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg

from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.db.sources import PsycopgSource
from dms_pkg.sample_data import create_orders
from dms_pkg.sandbox import Sandbox

CASES: list[tuple[str, str, dict[str, object]]] = [
    ("auto, primary key, 20 chunks (100k rows each)", "SELECT * FROM orders", {}),
    ("auto, primary key, 8 chunks", "SELECT * FROM orders", {"n_chunks": 8}),
    ("ctid page ranges, 8 chunks", "SELECT * FROM orders", {"strategy": "ctid", "n_chunks": 8}),
    ("quantile on customer_id, 64 chunks", "SELECT * FROM orders",
     {"key": "customer_id", "strategy": "quantile", "n_chunks": 64}),
    ("auto on created_at (timestamptz), 16 chunks", "SELECT * FROM orders",
     {"key": "created_at", "n_chunks": 16}),
    ("auto on status (text, 5 values), 8 chunks", "SELECT * FROM orders",
     {"key": "status", "n_chunks": 8}),
    ("hash on id, 8 chunks", "SELECT * FROM orders", {"key": "id", "strategy": "hash",
                                                      "n_chunks": 8}),
    ("join + filter, auto on o.id, 1000 chunks",
     "SELECT o.id, o.amount, c.n FROM orders o JOIN (SELECT 1 AS k, 'x' AS n) c "
     "ON c.k = o.customer_id % 2 WHERE o.is_paid", {"key": "o.id", "chunk_size": 2000}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    box = Sandbox.default()
    box.start()
    with psycopg.connect(box.dsn(), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = 'dms_bench'").fetchone():
            admin.execute("CREATE DATABASE dms_bench")
    with psycopg.connect(box.dsn("dms_bench"), autocommit=True) as conn:
        if create_orders(conn, args.rows):
            print(f"generated orders with {args.rows:,} rows")
        source = PsycopgSource(conn)
        print("| case | chunks | strategy | median s | min s | max s | target <= 1 s |")
        print("|---|---|---|---|---|---|---|")
        worst = 0.0
        for label, query, kwargs in CASES:
            times = []
            plan = None
            for _ in range(args.runs):
                start = time.perf_counter()
                plan = plan_chunks(source, query, **kwargs)  # type: ignore[arg-type]
                times.append(time.perf_counter() - start)
            assert plan is not None
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"| {label} | {len(plan.chunks)} | {plan.strategy} | {median:.3f} | "
                  f"{min(times):.3f} | {max(times):.3f} | {'met' if median <= 1 else 'MISSED'} |")
        print(f"\nslowest median: {worst:.3f} s on {args.rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
