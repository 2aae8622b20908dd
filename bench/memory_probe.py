"""Peak memory of the workers while moving 200K, 2M (and optionally 10M) rows.

    .venv/bin/python bench/memory_probe.py [--sizes 200000,2000000] [--with-10m]

Each size: an orders table of that many rows in database ``dms_bench_src``,
moved with ``CALL dms.execute_query_parallel`` (2 workers, binary COPY path)
into ``dms_bench`` -- where dms is installed -- while this script samples
every worker backend (``application_name = 'dms worker run N'``) and the
coordinator every 20 ms from ``/proc``:

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
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from dms_pkg.install.installer import install
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from dms_pkg.sandbox import Sandbox

RESULTS = Path(__file__).resolve().parent / "results"


def _status_kb(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "RssAnon", "VmRSS"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


class Sampler(threading.Thread):
    def __init__(self, dsn: str, label: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.label = dsn, label
        self.stop = threading.Event()
        self.peak_anon: dict[int, int] = {}
        self.peak_hwm: dict[int, int] = {}

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
                    [self.label])]
                for pid in pids:
                    kb = _status_kb(pid)
                    if kb:
                        self.peak_anon[pid] = max(self.peak_anon.get(pid, 0), kb.get("RssAnon", 0))
                        self.peak_hwm[pid] = max(self.peak_hwm.get(pid, 0), kb.get("VmHWM", 0))
                time.sleep(0.02)


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
        sampler = Sampler(box.dsn("dms_bench"), "dms worker run %")
        sampler.start()
        started = time.monotonic()
        home.execute(
            "CALL dms.execute_query_parallel(%s, 'SELECT * FROM orders', NULL, 'public',"
            " 'orders', '{\"max_workers\": 2}')", [conid[0]])
        seconds = time.monotonic() - started
        sampler.stop.set()
        sampler.join()
        target_sum = checksum(home, "public", "orders")
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "verified": target_sum == source_sum,
        "workers": len(sampler.peak_anon),
        "peak_private_mb": round(max(sampler.peak_anon.values(), default=0) / 1024, 1),
        "peak_rss_mb": round(max(sampler.peak_hwm.values(), default=0) / 1024, 1),
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
