"""``dms demo``: the end-to-end demo on the sandbox.

Until the parallel engine lands it shows the foundation working: the
project's own cluster up, the plugin installed into a fresh database, and the
server's PL/Python answering ``SELECT dms.version()``.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from dms_pkg import __version__
from dms_pkg.install.installer import connect, install
from dms_pkg.sandbox import Sandbox


def run_demo(dbname: str = "dms_demo") -> int:
    box = Sandbox.default()
    for line in box.start():
        print(f"sandbox: {line}")
    with connect(box.dsn(), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
            print(f"created database {dbname}")
    report = install(box.dsn(dbname))
    print(report.summary())
    with psycopg.connect(box.dsn(dbname)) as conn:
        row = conn.execute("SELECT dms.version(), version()").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = 'dms' AND table_name LIKE 'dms\\_%'"
        ).fetchone()
    assert row is not None and tables is not None
    print(f"SELECT dms.version()  ->  {row[0]}   (CLI: dms_pkg {__version__})")
    print(f"server: {row[1]}")
    print(f"DMS tables in schema dms: {tables[0]}")
    print(f"connect with: psql \"{box.url(dbname)}\"")
    return 0 if row[0] == __version__ else 1
