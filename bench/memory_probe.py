"""Peak memory of the workers while moving 200K, 2M (and optionally 10M) rows.

    .venv/bin/python bench/memory_probe.py [--sizes 200000,2000000] [--with-10m]

Each size: an orders table of that many rows in database ``dms_bench_src``,
moved with ``CALL dms.execute_query_parallel`` (2 workers, binary COPY path)
into ``dms_bench`` -- where dms is installed -- while ``procmem.RunSampler``
(bench/procmem.py, shared with bench/run.py) samples every process of the
run every 20 ms from ``/proc``.  The table shows the worker backends
(``application_name = 'dms worker run N'``) and their sessions; the JSON
also has the CALL's backend (the coordinator) and the workers' psql children:

* ``peak private MB``: the largest anonymous resident memory (``RssAnon``)
  seen, i.e. what the worker itself allocated -- the number that would grow
  if a worker buffered rows;
* ``peak RSS MB``: ``VmHWM``, which also counts the shared-buffer pages the
  backend touched, so it grows with the data read (up to shared_buffers)
  whatever the worker does.

Not a test: it prints a table and writes ``bench/results/memory-<time>.json``.
Run it as root or as the postgres OS user (it reads other processes' /proc).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import procmem
import psycopg

from dms_pkg.install.installer import install
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from dms_pkg.sandbox import Sandbox

RESULTS = Path(__file__).resolve().parent / "results"
WORKER_ROLES = ("worker", "worker data session")


def probe(box: Sandbox, rows: int) -> dict[str, Any]:
    with psycopg.connect(box.dsn("dms_bench_src"), autocommit=True) as src:
        create_orders(src, rows)
        source_sum = checksum(src, "public", "orders")
    with psycopg.connect(box.dsn("dms_bench"), autocommit=True) as home:
        create_empty_orders(home)
        conid = home.execute(
            "SELECT conid FROM dms.dms_dbcondtls WHERE connm = 'bench_src' AND curflg = 'Y'"
        ).fetchone()
        if conid is None:
            conid = home.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES ('bench_src',"
                " 'POSTGRESQL', %s) RETURNING conid", [box.dsn("dms_bench_src")]).fetchone()
        assert conid is not None
        sampler = procmem.RunSampler(box.dsn("dms_bench"), caller_pid=home.info.backend_pid,
                                     databases=("dms_bench", "dms_bench_src"))
        sampler.start()
        started = time.monotonic()
        try:
            home.execute(
                "CALL dms.execute_query_parallel(%s, 'SELECT * FROM orders', NULL, 'public',"
                " 'orders', '{\"max_workers\": 2}')", [conid[0]])
        finally:
            sampler.finish()
        seconds = time.monotonic() - started
        target_sum = checksum(home, "public", "orders")
    # The worker backends and their sessions (what "dms worker run %" names).
    workers = sampler.largest(WORKER_ROLES)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "verified": target_sum == source_sum,
        "workers": len(sampler.peaks.get("worker", procmem.RolePeak()).pids),
        "peak_private_mb": procmem.mb(workers.private_kb),
        "peak_rss_mb": procmem.mb(workers.hwm_kb),
        "processes": sampler.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,2000000")
    parser.add_argument("--with-10m", action="store_true", help="add a 10M-row run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([10_000_000] if args.with_10m else [])

    box = Sandbox.default()
    box.start()
    with psycopg.connect(box.dsn(), autocommit=True) as admin:
        for db in ("dms_bench", "dms_bench_src"):
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
                admin.execute(f'CREATE DATABASE "{db}"')
    install(box.dsn("dms_bench"))
    results = [probe(box, n) for n in sizes]
    print("| rows | seconds | verified | workers | peak private MB | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['rows']:,} | {r['seconds']} | {'yes' if r['verified'] else 'NO'} | "
              f"{r['workers']} | {r['peak_private_mb']} | {r['peak_rss_mb']} |")
    growth = results[-1]["peak_private_mb"] - results[0]["peak_private_mb"]
    print(f"\nprivate memory growth from {results[0]['rows']:,} to {results[-1]['rows']:,} rows: "
          f"{growth:+.1f} MB (target: within +50 MB)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"memory-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
