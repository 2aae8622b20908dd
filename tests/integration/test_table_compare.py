"""``dms table-compare`` on real PostgreSQL, MariaDB and SQLite: exactly the planted rows."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.json_schemas import validate

ROWS = 200_000
PG_ROWS = """INSERT INTO {t} SELECT g, 'k' || g, g % 100, g * 1.25,
    timestamp '2024-01-01' + g * interval '1 second',
    CASE WHEN g % 7 = 0 THEN NULL ELSE md5(g::text) END FROM generate_series(1, {n}) g"""
MY_ROWS = """INSERT INTO {t} SELECT seq, CONCAT('k', seq), seq % 100, seq * 1.25,
    '2024-01-01' + INTERVAL seq SECOND, IF(seq % 7 = 0, NULL, MD5(seq)) FROM seq_1_to_{n}"""
# Planted in B: changed, missing and extra rows (by id; code is 'k' || id, grp id % 100).
CHANGED, MISSING, EXTRA = [17, 100_000, 199_999], [3, 150_001], [200_005, 250_000]
PLANT = [
    "UPDATE {t} SET note = 'changed' WHERE id IN (17, 100000)",
    "UPDATE {t} SET amount = amount + 0.01 WHERE id = 199999",
    "DELETE FROM {t} WHERE id IN (3, 150001)",
]


@pytest.fixture(scope="module")
def dbs(cluster: Cluster, databases: DatabaseFactory, mariadb: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pg = cluster.dsn(databases.create())
    with psycopg.connect(pg, autocommit=True) as conn:
        for t in ("a", "b"):
            conn.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, code text NOT NULL UNIQUE,"
                         " grp integer NOT NULL, amount numeric(12,2), made timestamp,"
                         " note text)".encode())
            conn.execute(PG_ROWS.format(t=t, n=ROWS).encode())
        for statement in PLANT:
            conn.execute(statement.format(t="b").encode())
        for i in EXTRA:
            conn.execute("INSERT INTO b VALUES (%s, %s, %s, 1, '2030-01-01', 'extra')",
                         [i, f"k{i}", i % 100])
    # B again in another PostgreSQL database: the checksum path between two of them.
    pg2 = cluster.dsn(databases.create())
    with psycopg.connect(pg2, autocommit=True) as conn:
        conn.execute("CREATE TABLE b (id bigint PRIMARY KEY, code text NOT NULL UNIQUE,"
                     " grp integer NOT NULL, amount numeric(12,2), made timestamp, note text)")
        conn.execute(PG_ROWS.format(t="b", n=ROWS).encode())
        for statement in PLANT:
            conn.execute(statement.format(t="b").encode())
        for i in EXTRA:
            conn.execute("INSERT INTO b VALUES (%s, %s, %s, 1, '2030-01-01', 'extra')",
                         [i, f"k{i}", i % 100])
    my_db = f"dmst_tc_{uuid.uuid4().hex[:8]}"
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{my_db}`")
        cur.execute(f"USE `{my_db}`")
        cur.execute("CREATE TABLE b (id bigint PRIMARY KEY, code varchar(20) NOT NULL UNIQUE,"
                    " grp int NOT NULL, amount decimal(12,2), made datetime(6), note text)")
        cur.execute(MY_ROWS.format(t="b", n=ROWS))
        for statement in PLANT:
            cur.execute(statement.format(t="b"))
        for i in EXTRA:
            cur.execute("INSERT INTO b VALUES (%s, %s, %s, 1, '2030-01-01', 'extra')",
                        [i, f"k{i}", i % 100])
    lite = tmp_path_factory.mktemp("tc") / "b.db"
    with psycopg.connect(pg) as conn, sqlite3.connect(lite) as out:
        out.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, code TEXT NOT NULL UNIQUE,"
                    " grp INTEGER NOT NULL, amount DECIMAL(12,2), made TIMESTAMP, note TEXT)")
        out.executemany("INSERT INTO b VALUES (?, ?, ?, ?, ?, ?)", [
            (r[0], r[1], r[2], float(r[3]), r[4].isoformat(sep=" "), r[5])
            for r in conn.execute("SELECT * FROM b ORDER BY id")])
    my_url = f"mysql://{mariadb['user']}@localhost/{my_db}?unix_socket={mariadb['unix_socket']}"
    yield {"pg": pg, "db": ["--db", f"my={my_url}", "--db", f"lite=sqlite:///{lite}",
                            "--db", f"pg2={pg2}"], "pg2": pg2,
           "my_db": my_db}
    with pymysql.connect(**mariadb, autocommit=True) as my, my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{my_db}`")


def compare(dbs: dict[str, Any], *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "table-compare", "--dsn", dbs["pg"], *dbs["db"],
         "--format", "json", *args],
        capture_output=True, text=True, check=False, timeout=300, stdin=subprocess.DEVNULL)
    assert done.stdout, done.stderr
    document = json.loads(done.stdout)
    validate(document)
    return done.returncode, document


def keys(rows: list[list[Any]]) -> list[Any]:
    return [r[0] if len(r) == 1 else tuple(r) for r in rows]


@pytest.mark.parametrize("b", ["public.b", "pg2.public.b", "my.b", "lite.b"])
def test_exactly_the_planted_rows_are_found(dbs: dict[str, Any], b: str) -> None:
    code, out = compare(dbs, f"public.a:{b}", "--parallel", "2")
    assert code == 1, out
    pair = out["pairs"][0]
    # One PostgreSQL database: a join in 2 x 2 key ranges; else segment checksums.
    assert (pair["method"], pair["segments"] == 4) == (
        ("join", True) if b == "public.b" else ("checksum", False))
    assert (pair["status"], pair["key"]) == ("different", ["id"])
    assert (pair["rows_a"], pair["rows_b"]) == (ROWS, ROWS - len(MISSING) + len(EXTRA))
    assert keys(pair["only_in_a"]) == MISSING
    assert keys(pair["only_in_b"]) == EXTRA
    assert keys(pair["different"]) == CHANGED
    assert pair["columns"] == ["id", "code", "grp", "amount", "made", "note"]


@pytest.mark.parametrize("b", ["public.b", "my.b"])
def test_text_and_composite_keys(dbs: dict[str, Any], b: str) -> None:
    code, out = compare(dbs, f"public.a:{b}", "--key", "code")
    assert code == 1
    pair = out["pairs"][0]
    assert pair["key"] == ["code"]
    assert sorted(keys(pair["only_in_a"])) == sorted(f"k{i}" for i in MISSING)
    assert sorted(keys(pair["only_in_b"])) == sorted(f"k{i}" for i in EXTRA)
    assert sorted(keys(pair["different"])) == sorted(f"k{i}" for i in CHANGED)
    code, out = compare(dbs, f"public.a:{b}", "--key", "grp,id")
    pair = out["pairs"][0]
    assert keys(pair["different"]) == sorted((i % 100, i) for i in CHANGED)
    assert keys(pair["only_in_a"]) == sorted((i % 100, i) for i in MISSING)


def test_identical_tables_are_equal_across_dialects(dbs: dict[str, Any]) -> None:
    code, out = compare(dbs, "public.b:my.b", "my.b:lite.b", "public.a:public.a")
    assert code == 0, out
    assert [p["status"] for p in out["pairs"]] == ["equal"] * 3
    assert out["summary"] == {"pairs": 3, "equal": 3, "different": 0, "errors": 0}


def test_limit_stops_after_that_many_differences(dbs: dict[str, Any]) -> None:
    code, out = compare(dbs, "public.a:public.b", "--limit", "2")
    pair = out["pairs"][0]
    assert code == 1 and pair["limited"] is True
    assert len(pair["only_in_a"]) + len(pair["only_in_b"]) + len(pair["different"]) == 2


def test_failing_pairs_are_reported_and_the_others_finish(dbs: dict[str, Any]) -> None:
    with psycopg.connect(dbs["pg"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS nokey (x int, y text)")
    code, out = compare(dbs, "public.a:public.nope", "public.nokey:public.nokey", "bad",
                        "public.a:my.b", "--key", "id")
    statuses = [(p["pair"], p["status"]) for p in out["pairs"]]
    assert code == 2
    assert statuses == [("public.a:public.nope", "error"), ("public.nokey:public.nokey", "error"),
                        ("bad", "error"), ("public.a:my.b", "different")]
    errors = [p["error"] for p in out["pairs"][:3]]
    assert errors[0]["sqlstate"] == "42P01"
    assert errors[1]["message"] == "key column id is not in both tables"
    assert errors[2]["message"] == '"bad" is not a pair: write A:B (one colon)'
    code, out = compare(dbs, "public.nokey:public.nokey")
    assert out["pairs"][0]["error"]["message"] == (
        "public.nokey has no primary key to match rows by")


def test_uuid_keys_across_postgres_and_mariadb(dbs: dict[str, Any], mariadb: dict[str, Any]
                                              ) -> None:
    my_db = dbs["my_db"]
    with psycopg.connect(dbs["pg"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS ua (u uuid PRIMARY KEY, v integer)")
        conn.execute("TRUNCATE ua")
        conn.execute("INSERT INTO ua SELECT md5(g::text)::uuid, g FROM"
                     " generate_series(1, 20000) g")
    dashed = ("INSERT(INSERT(INSERT(INSERT(MD5(seq), 9, 0, '-'), 14, 0, '-'), 19, 0, '-'),"
              " 24, 0, '-')")
    with pymysql.connect(**mariadb, database=my_db, autocommit=True) as my, my.cursor() as cur:
        # MySQL shops keep uuids as char(36): compared with a PostgreSQL uuid, as text
        cur.execute("CREATE TABLE IF NOT EXISTS ub (u char(36) PRIMARY KEY, v int)")
        cur.execute("DELETE FROM ub")
        cur.execute(f"INSERT INTO ub SELECT {dashed}, seq FROM seq_1_to_20000")
        cur.execute("UPDATE ub SET v = -1 WHERE v = 321")
        cur.execute("DELETE FROM ub WHERE v = 654")
    with psycopg.connect(dbs["pg"]) as conn:
        found = [conn.execute("SELECT md5(%s::text)::uuid::text", [g]).fetchone()
                 for g in (321, 654)]
    changed, missing = (str(row[0]) for row in found if row is not None)
    code, out = compare(dbs, "public.ua:my.ub")
    pair = out["pairs"][0]
    assert (code, pair["key"]) == (1, ["u"])
    assert keys(pair["different"]) == [changed] and keys(pair["only_in_a"]) == [missing]
    assert pair["only_in_b"] == []


def test_a_join_compares_columns_without_equality_by_their_text(dbs: dict[str, Any]) -> None:
    with psycopg.connect(dbs["pg"], autocommit=True) as conn:
        for t in ("ja", "jb"):
            conn.execute(f"CREATE TABLE {t} (id int PRIMARY KEY, doc json, spot point)".encode())
            conn.execute(f"INSERT INTO {t} SELECT g, json_build_object('n', g),"
                         f" point(g, g) FROM generate_series(1, 1000) g".encode())
        conn.execute("""UPDATE jb SET doc = '{"n": "changed"}' WHERE id = 500""")
        conn.execute("UPDATE jb SET spot = point(0, 0) WHERE id = 7")
        conn.execute("UPDATE jb SET doc = NULL WHERE id = 900")
    code, out = compare(dbs, "public.ja:public.jb", "--parallel", "2")
    pair = out["pairs"][0]
    assert (code, pair["method"]) == (1, "join")
    assert keys(pair["different"]) == [7, 500, 900]
    assert pair["only_in_a"] == pair["only_in_b"] == []


def test_sparse_and_negative_integer_keys_are_bucketed_exactly(dbs: dict[str, Any]) -> None:
    """Integer keys are cut evenly between the smallest and the largest key, each
    top segment summed per bucket of keys: far-apart, negative and dense keys
    alike, with the differences found exactly (here between two databases)."""
    ids = "SELECT unnest(ARRAY[-1000000000000, -5, 0, 7, 1000000000000000]) UNION ALL " \
          "SELECT g FROM generate_series(100000, 140000) g"
    pg2 = dbs["pg2"]
    for dsn in (dbs["pg"], pg2):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE sparse (id bigint PRIMARY KEY, v text)")
            conn.execute(f"INSERT INTO sparse SELECT i, 'v' || i FROM ({ids}) s(i)".encode())
    with psycopg.connect(pg2, autocommit=True) as conn:
        conn.execute("UPDATE sparse SET v = 'changed' WHERE id IN (-5, 120000)")
        conn.execute("DELETE FROM sparse WHERE id = 1000000000000000")
        conn.execute("INSERT INTO sparse VALUES (-2000000000000, 'new')")
    code, out = compare(dbs, "public.sparse:pg2.public.sparse", "--parallel", "2")
    pair = out["pairs"][0]
    assert (code, pair["method"]) == (1, "checksum")
    assert (pair["rows_a"], pair["rows_b"]) == (40_006, 40_006)
    assert keys(pair["different"]) == [-5, 120000]
    assert keys(pair["only_in_a"]) == [1000000000000000]
    assert keys(pair["only_in_b"]) == [-2000000000000]
