"""``dms profile`` on real PostgreSQL, MariaDB and SQLite: metrics equal to plain SQL's."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.json_schemas import validate

ROWS = 3000
# Every value a function of g: NULL notes every 7th row, amounts with cents, skewed kinds.
PG_FILL = """CREATE TABLE items (id integer PRIMARY KEY, amount numeric(10,2), note text,
    kind varchar(10), made date);
INSERT INTO items SELECT g, g * 1.25, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('x', g % 13) END,
    CASE WHEN g % 10 < 7 THEN 'a' ELSE 'b' || (g % 3) END, DATE '2024-01-01' + (g % 400)
  FROM generate_series(1, 3000) g"""
MY_FILL = ["CREATE TABLE items (id int PRIMARY KEY, amount decimal(10,2), note text,"
           " kind varchar(10), made date)",
           "INSERT INTO items SELECT seq, seq * 1.25,"
           " IF(seq % 7 = 0, NULL, REPEAT('x', seq % 13)),"
           " IF(seq % 10 < 7, 'a', CONCAT('b', seq % 3)),"
           " DATE '2024-01-01' + INTERVAL (seq % 400) DAY FROM seq_1_to_3000"]


def run_profile(pg: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dms_pkg.cli", "profile", "--dsn", pg, *args],
                          capture_output=True, text=True, check=False, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def setup(cluster: Cluster, databases: DatabaseFactory, mariadb: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pg = cluster.dsn(databases.create(installed=True))
    with psycopg.connect(pg, autocommit=True) as conn:
        for statement in PG_FILL.split(";\n"):
            conn.execute(statement.encode())
    my_db = f"dmst_pf_{uuid.uuid4().hex[:8]}"
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{my_db}`")
        cur.execute(f"USE `{my_db}`")
        for statement in MY_FILL:
            cur.execute(statement)
    lite = tmp_path_factory.mktemp("pf") / "items.db"
    with psycopg.connect(pg) as conn, sqlite3.connect(lite) as out:
        out.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, amount DECIMAL(10,2), note TEXT,"
                    " kind VARCHAR(10), made DATE)")
        out.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", [
            (r[0], float(r[1]), r[2], r[3], r[4].isoformat())
            for r in conn.execute("SELECT * FROM items ORDER BY id")])
    my_url = f"mysql://{mariadb['user']}@localhost/{my_db}?unix_socket={mariadb['unix_socket']}"
    yield {"pg": pg, "dbs": ["--db", f"my={my_url}", "--db", f"lite=sqlite:///{lite}"]}
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{my_db}`")


def expected(pg: str) -> dict[str, dict[str, Any]]:
    """The metrics by plain SQL, one query per metric: what the one scan must equal."""
    with psycopg.connect(pg) as conn:
        def one(q: str) -> Any:
            row = conn.execute(q.encode()).fetchone()
            assert row is not None
            return row[0]
        out: dict[str, dict[str, Any]] = {}
        for col in ("id", "amount", "note", "kind", "made"):
            out[col] = {
                "count": one(f"SELECT count({col}) FROM items"),
                "null_count": one(f"SELECT count(*) FILTER (WHERE {col} IS NULL) FROM items"),
                "distinct_count": one(f"SELECT count(DISTINCT {col}) FROM items"),
                "min": str(one(f"SELECT min({col}) FROM items")),
                "max": str(one(f"SELECT max({col}) FROM items")),
            }
        for col in ("id", "amount"):
            out[col]["mean"] = float(one(f"SELECT avg({col}) FROM items"))
            out[col]["stddev"] = float(one(f"SELECT stddev_samp({col}) FROM items"))
        out["note"].update(min_length=one("SELECT min(length(note)) FROM items"),
                           max_length=one("SELECT max(length(note)) FROM items"),
                           avg_length=float(one("SELECT avg(length(note)) FROM items")))
        out["amount"]["min"], out["amount"]["max"] = "1.25", "3750"
        return out


def test_profiles_equal_plain_sql_in_all_three_dialects(setup: dict[str, Any]) -> None:
    done = run_profile(setup["pg"], *setup["dbs"], "public.items", "my.items", "lite.items",
                       "--format", "json", "--parallel", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    validate(out)
    assert out["kind"] == "profile" and out["summary"] == {"tables": 3, "failed": 0}
    want = expected(setup["pg"])
    for table in out["tables"]:
        assert table["row_count"] == ROWS, table["table"]
        columns = {c["column"]: c for c in table["columns"]}
        for name, metrics in want.items():
            got = columns[name]
            for metric, value in metrics.items():
                if isinstance(value, float):
                    assert got[metric] == pytest.approx(value, rel=1e-9), (table["table"], name,
                                                                           metric)
                else:
                    assert got[metric] == value, (table["table"], name, metric, got[metric])
        hist = columns["id"]["histogram"]
        assert [b["count"] for b in hist] == [300] * 10, table["table"]
        assert sum(b["count"] for b in columns["made"]["histogram"]) == ROWS
        assert columns["note"]["histogram"] is None
    # PostgreSQL counts buckets with width_bucket and GROUPING SETS, MariaDB and
    # SQLite with a CASE per value: the same counts.
    counts = {t["table"]: {c["column"]: [b["count"] for b in c["histogram"] or []]
                           for c in t["columns"]} for t in out["tables"]}
    assert counts["my.items"]["amount"] == counts["public.items"]["amount"] \
        == counts["lite.items"]["amount"]
    assert counts["my.items"]["made"] == counts["public.items"]["made"]


def test_profiles_are_kept_with_the_row_count_change(setup: dict[str, Any]) -> None:
    first = json.loads(run_profile(setup["pg"], "public.items", "--format", "json").stdout)
    with psycopg.connect(setup["pg"], autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, 1, NULL, 'c', NULL FROM"
                     " generate_series(3001, 3040) g")
        try:
            second = json.loads(run_profile(setup["pg"], "public.items", "--format",
                                            "json").stdout)
            assert second["tables"][0]["row_count_change"] == 40
            rows = conn.execute(
                "SELECT t.row_count, t.row_count_change, c.null_count, c.distinct_count"
                " FROM dms.profile_table t JOIN dms.profile_column c USING (profile_id, table_ref)"
                " WHERE c.column_name = 'note' AND t.profile_id IN (%s, %s)"
                " ORDER BY t.profile_id", [first["profile_id"], second["profile_id"]]).fetchall()
        finally:
            conn.execute("DELETE FROM items WHERE id > 3000")
    assert rows[0][0] == ROWS and rows[1] == (ROWS + 40, 40, rows[0][2] + 40, rows[0][3])


def test_a_failing_table_is_reported_and_the_others_finish(setup: dict[str, Any]) -> None:
    done = run_profile(setup["pg"], *setup["dbs"], "public.items", "public.nope", "my.nope",
                       "lite.items", "--no-store")
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert lines[0].startswith("public.items: 3,000 rows")
    assert "public.nope: error: [42P01] table public.nope does not exist" in done.stdout
    assert "my.nope: error: [42P01] table nope does not exist on the mysql side" in done.stdout
    assert lines[-1] == "4 tables profiled, 2 failed"


def test_bad_arguments_are_refused(setup: dict[str, Any]) -> None:
    done = run_profile(setup["pg"], "--parallel", "100", "public.items")
    assert done.returncode == 2
    assert "--parallel must be from 1 to 64, not 100" in done.stderr
    none = run_profile(setup["pg"])
    assert none.returncode == 2 and "no tables to profile" in none.stderr


def test_the_dialect_queries_are_one_scan(tmp_path: Path) -> None:
    """Scan 1 is one SELECT over the table for every metric of every column."""
    from dms_pkg.jobs.profile.metrics import scan_one
    from dms_pkg.jobs.schema_diff.catalog import Column

    cols = [Column("a", "int", "INT", True, None), Column("b", "text", "TEXT", True, None)]
    for dialect in ("postgres", "mysql", "sqlite"):
        sql_text = scan_one(dialect, None, "t", cols).sql
        assert sql_text.count("SELECT") == 1 and sql_text.count("FROM") == 1
