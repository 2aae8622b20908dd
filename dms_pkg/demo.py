"""``dms demo``: the main job end to end on the project's own cluster.

1. the sandbox cluster up, dms installed in the warehouse database ``dms_demo``;
2. a source database ``dms_demo_src`` with about a million orders (mixed
   types, NULLs, jsonb), registered as a DMS_DBCONDTLS connection;
3. ``dms.submit_query_parallel`` + ``dms.run_queued``: the orders move into
   ``dms_demo.public.orders`` with 2 workers while a progress bar follows
   ``dms.run_progress``;
4. source and target compared by row count and content checksum.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
from psycopg import sql
from rich.console import Console

from dms_pkg import __version__
from dms_pkg.install.installer import connect, install
from dms_pkg.sample_data import checksum, create_empty_orders, create_orders
from dms_pkg.sandbox import Sandbox
from dms_pkg.watch import watch

DEMO_ROWS = 1_000_000


def _ensure_database(admin: psycopg.Connection[Any], name: str, console: Console) -> None:
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        console.print(f"created database {name}")


def run_demo(dbname: str = "dms_demo", rows: int = DEMO_ROWS, workers: int = 2) -> int:
    console = Console()
    box = Sandbox.default()
    for line in box.start():
        console.print(f"sandbox: {line}")
    source_db = f"{dbname}_src"
    with connect(box.dsn(), autocommit=True) as admin:
        _ensure_database(admin, dbname, console)
        _ensure_database(admin, source_db, console)
    console.print(install(box.dsn(dbname)).summary())

    with connect(box.dsn(source_db), autocommit=True) as src:
        started = time.monotonic()
        if create_orders(src, rows):
            console.print(f"generated {rows:,} orders in {source_db} "
                          f"({time.monotonic() - started:.1f} s)")
        else:
            console.print(f"{source_db}.public.orders already holds {rows:,} orders")

    with connect(box.dsn(dbname), autocommit=True) as home:
        version = home.execute("SELECT dms.version()").fetchone()
        console.print(f"SELECT dms.version() -> {version[0] if version else '?'} "
                      f"(CLI: dms_pkg {__version__})")
        create_empty_orders(home)
        conid = _source_connection(home, box.dsn(source_db))
        run_sql = "SELECT * FROM orders"
        row = home.execute(
            "SELECT dms.submit_query_parallel(%s, %s, NULL, 'public', 'orders', %s::jsonb)",
            [conid, run_sql, json.dumps({"max_workers": workers})],
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        console.print(f"run {run_id}: CALL dms.run_queued({run_id}) moves "
                      f"{source_db}.public.orders -> {dbname}.public.orders "
                      f"with {workers} workers")
        errors: list[BaseException] = []

        def carry_out() -> None:
            try:
                with psycopg.connect(box.dsn(dbname), autocommit=True) as runner:
                    runner.execute("CALL dms.run_queued(%s)", [run_id])
            except psycopg.Error as exc:
                errors.append(exc)

        thread = threading.Thread(target=carry_out, daemon=True)
        thread.start()
        final = watch(home, run_id, interval=0.25, console=console)
        thread.join()
        details = home.execute(
            "SELECT path, strategy, chunks_total, workers, rows_per_sec FROM dms.run_progress"
            " WHERE run_id = %s", [run_id]).fetchone()
        target_sum = checksum(home, "public", "orders")
    with connect(box.dsn(source_db)) as src:
        source_sum = checksum(src, "public", "orders")

    if details:
        console.print(f"path {details[0]}, {details[2]} chunks ({details[1]}), "
                      f"{details[3]} workers, {int(details[4] or 0):,} rows/s")
    console.print(f"source {source_db}.public.orders: {source_sum[0]:,} rows, "
                  f"checksum {source_sum[1]}")
    console.print(f"target {dbname}.public.orders:     {target_sum[0]:,} rows, "
                  f"checksum {target_sum[1]}")
    same = source_sum == target_sum and final["state"] == "SUCCEEDED"
    console.print("[bold green]MATCH[/]" if same else "[bold red]MISMATCH[/]")
    if errors:
        console.print(f"[red]{errors[0]}[/]")
    console.print(f'watch it again: SELECT * FROM dms.run_progress WHERE run_id = {run_id};  '
                  f'(psql "{box.url(dbname)}")')
    return 0 if same else 1


def _source_connection(home: psycopg.Connection[Any], dsn: str) -> int:
    """The DMS_DBCONDTLS row for the demo source (no password: local socket)."""
    row = home.execute(
        "SELECT conid FROM dms.dms_dbcondtls WHERE connm = 'demo_src' AND curflg = 'Y'"
    ).fetchone()
    if row:
        home.execute("UPDATE dms.dms_dbcondtls SET constr = %s WHERE conid = %s", [dsn, row[0]])
        return int(row[0])
    row = home.execute(
        "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES ('demo_src', 'POSTGRESQL',"
        " %s) RETURNING conid", [dsn],
    ).fetchone()
    assert row is not None
    return int(row[0])
