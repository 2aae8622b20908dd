"""A home database with the plugin, a source and a target database, and helpers.

The home database is where dms is installed and runs are coordinated; the
source and target databases are reached through DMS_DBCONDTLS rows, as a
user would set them up.  All three live in the test cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from dms_pkg.sample_data import checksum, create_orders
from tests.integration.conftest import Cluster, DatabaseFactory

ORDERS_ROWS = 120_000


@dataclass
class EngineEnv:
    cluster: Cluster
    home: str  # database names
    source: str
    target: str
    source_conid: int
    target_conid: int

    def dsn(self, db: str | None = None, user: str | None = None) -> str:
        return self.cluster.dsn(db or self.home, user)

    def connect(self, db: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(db), autocommit=True, **kwargs)

    def call(self, *args: Any, user: str | None = None) -> int:
        """CALL dms.execute_query_parallel(...) in the home database; the run id."""
        with psycopg.connect(self.dsn(self.home, user), autocommit=True) as conn:
            row = conn.execute(
                "CALL dms.execute_query_parallel(%s, %s, %s, %s, %s, %s::jsonb)", list(args)
            ).fetchone()
        assert row is not None
        return int(row[0])

    def run(self, run_id: int) -> dict[str, Any]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("SELECT * FROM dms.run_progress WHERE run_id = %s",
                              [run_id]).fetchone()
        assert row is not None
        return row

    def chunks(self, run_id: int) -> list[dict[str, Any]]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT * FROM dms.chunk WHERE run_id = %s ORDER BY chunk_no", [run_id]
            ).fetchall()

    def checksum(self, db: str, table: str, schema: str = "public") -> tuple[int, int]:
        with self.connect(db) as conn:
            return checksum(conn, schema, table)

    def empty_target(self, db: str, table: str = "orders") -> None:
        with self.connect(db) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE orders_like INCLUDING ALL)").format(
                sql.Identifier(table)))

    def count_runs(self) -> int:
        with self.connect() as conn:
            row = conn.execute("SELECT count(*) FROM dms.run").fetchone()
        assert row is not None
        return int(row[0])


def make_engine_env(cluster: Cluster, databases: DatabaseFactory) -> EngineEnv:
    home = databases.create(installed=True)
    source = databases.create()
    target = databases.create()
    for db in (home, source, target):
        with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
            # The same orders in the home and the source database; an empty
            # template of the table for targets everywhere.
            if db != target:
                create_orders(conn, ORDERS_ROWS)
            conn.execute(
                "CREATE TABLE orders_like (id bigint NOT NULL PRIMARY KEY, customer_id integer "
                "NOT NULL, amount numeric(12,2) NOT NULL, status text NOT NULL, note text, "
                "created_at timestamptz NOT NULL, ship_date date, is_paid boolean NOT NULL, "
                "payload jsonb)"
            )
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        ids = []
        for name, db in (("src", source), ("dst", target)):
            row = conn.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, constr) VALUES (%s, 'POSTGRESQL', %s)"
                " RETURNING conid",
                [name, cluster.dsn(db)],
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return EngineEnv(cluster, home, source, target, ids[0], ids[1])
