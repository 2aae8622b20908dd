"""``dms schema-diff`` on real PostgreSQL, MariaDB and SQLite (docs/schema-diff.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory
from tests.integration.json_schemas import validate

# The same table in three dialects, written as each one's users write it.
PG_TABLE = """CREATE TABLE {name} (
    id serial PRIMARY KEY, name varchar(20) NOT NULL, amount numeric(12,2) DEFAULT 0,
    created timestamp, paid boolean, code text UNIQUE, qty integer NOT NULL DEFAULT 1,
    total double precision, born date, data bytea)"""
MY_TABLE = """CREATE TABLE {name} (
    id int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(20) NOT NULL,
    amount decimal(12,2) DEFAULT 0.00, created datetime, paid tinyint(1), code text,
    qty int NOT NULL DEFAULT 1, total double, born date, data blob,
    UNIQUE KEY code_uk (code(40)))"""
LITE_TABLE = """CREATE TABLE {name} (
    id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL, amount DECIMAL(12,2) DEFAULT 0,
    created TIMESTAMP, paid BOOLEAN, code TEXT UNIQUE, qty INT NOT NULL DEFAULT 1,
    total REAL, born DATE, data BLOB)"""


class Dbs:
    def __init__(self, pg: str, my_url: str, my_args: dict[str, Any], my_db: str,
                 lite: Path) -> None:
        self.pg, self.my_url, self.my_args, self.my_db, self.lite = (
            pg, my_url, my_args, my_db, lite)

    def pg_run(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(self.pg, autocommit=True) as conn:
            for s in statements:
                conn.execute(s.encode())

    def my_run(self, *statements: str) -> None:
        with pymysql.connect(**self.my_args, database=self.my_db, autocommit=True) as conn, \
                conn.cursor() as cur:
            for s in statements:
                cur.execute(s)

    def lite_run(self, *statements: str) -> None:
        with sqlite3.connect(self.lite) as conn:
            for s in statements:
                conn.execute(s)

    def diff(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dms_pkg.cli", "schema-diff", "--dsn", self.pg,
             "--db", f"my={self.my_url}", "--db", f"lite=sqlite:///{self.lite}", *args],
            capture_output=True, text=True, check=False, timeout=120, input=stdin)


@pytest.fixture(scope="module")
def dbs(cluster: Cluster, databases: DatabaseFactory, mariadb: dict[str, Any],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dbs]:
    pg = cluster.dsn(databases.create())
    my_db = f"dmst_sd_{uuid.uuid4().hex[:8]}"
    with pymysql.connect(**mariadb, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{my_db}`")
    socket = mariadb["unix_socket"]
    my_url = f"mysql://{mariadb['user']}@localhost/{my_db}?unix_socket={socket}"
    box = Dbs(pg, my_url, mariadb, my_db, tmp_path_factory.mktemp("sd") / "shop.db")
    box.pg_run(PG_TABLE.format(name="orders"), "CREATE INDEX ON orders (created)")
    box.my_run(MY_TABLE.format(name="orders"), "CREATE INDEX created_ix ON orders (created)")
    box.lite_run(LITE_TABLE.format(name="orders"), "CREATE INDEX created_ix ON orders (created)")
    yield box
    with pymysql.connect(**mariadb, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{my_db}`")


def test_the_same_table_in_three_dialects_is_equal(dbs: Dbs) -> None:
    done = dbs.diff("public.orders:my.orders", "public.orders:lite.orders",
                    "my.orders:lite.orders")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "public.orders vs my.orders: equal",
        "public.orders vs lite.orders: equal",
        "my.orders vs lite.orders: equal",
        "3 pairs: 3 equal, 0 different, 0 could not be compared",
    ]


def test_each_kind_of_difference_is_found(dbs: Dbs) -> None:
    dbs.pg_run("""CREATE TABLE changed (
        id integer, name varchar(30), amount numeric(12,2) DEFAULT 1, created timestamptz,
        paid boolean, qty integer NOT NULL DEFAULT 1, total double precision, born date,
        data bytea, extra integer, PRIMARY KEY (id, name))""",
               "CREATE UNIQUE INDEX ON changed (extra)", "CREATE INDEX ON changed (born)")
    done = dbs.diff("public.orders:public.changed", "--format", "json")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout)
    validate(out)
    found = {(d["kind"], d["column"], json.dumps(d["a"]), json.dumps(d["b"]))
             for d in out["pairs"][0]["differences"]}
    assert found == {
        ("default", "id", '"AUTOINCREMENT"', "null"),
        ("type", "name", '"VARCHAR(20)"', '"VARCHAR(30)"'),
        ("default", "amount", '"0"', '"1"'),
        ("type", "created", '"TIMESTAMP"', '"TIMESTAMPTZ"'),
        ("column_only_in_a", "code", '"text"', "null"),
        ("column_only_in_b", "extra", "null", '"integer"'),
        ("primary_key", None, '["id"]', '["id", "name"]'),
        ("unique_only_in_a", None, '["code"]', "null"),
        ("unique_only_in_b", None, "null", '["extra"]'),
        ("index_only_in_a", None, '["created"]', "null"),
        ("index_only_in_b", None, "null", '["born"]'),
    }
    assert out["summary"] == {"pairs": 1, "equal": 0, "different": 1, "errors": 0}


def test_cross_dialect_differences_are_found_too(dbs: Dbs) -> None:
    dbs.my_run("CREATE TABLE narrower (id int(11) NOT NULL PRIMARY KEY, name varchar(10),"
               " amount decimal(10,2) DEFAULT 0, created datetime, paid tinyint(1),"
               " code text, qty smallint NOT NULL DEFAULT 2, total float, born date,"
               " data blob)")
    done = dbs.diff("public.orders:my.narrower")
    assert done.returncode == 1
    assert done.stdout.splitlines()[1:-1] == [
        "  column id: default AUTOINCREMENT vs None",
        "  column name: type VARCHAR(20) vs VARCHAR(10)",
        "  column name: nullable False vs True",
        "  column amount: type DECIMAL(12, 2) vs DECIMAL(10, 2)",
        "  column qty: type INT vs SMALLINT",
        "  column qty: default 1 vs 2",
        "  column total: type DOUBLE PRECISION vs REAL",
        "  unique on (code) only in A",
        "  index on (created) only in A",
    ]


def test_a_failing_pair_is_reported_and_the_others_finish(dbs: Dbs, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# nightly checks\npublic.orders:my.orders\n\npublic.orders:public.nope\n"
                     "no_colon_here\nnosuch.orders:my.orders\npublic.orders:lite.orders\n")
    done = dbs.diff("--pairs-file", str(pairs), "--format", "json", "--parallel", "2")
    assert done.returncode == 2, done.stderr
    out = json.loads(done.stdout)
    validate(out)
    assert [(p["pair"], p["status"]) for p in out["pairs"]] == [
        ("public.orders:my.orders", "equal"),
        ("public.orders:public.nope", "error"),
        ("no_colon_here", "error"),
        ("nosuch.orders:my.orders", "error"),
        ("public.orders:lite.orders", "equal"),
    ]
    errors = {p["pair"]: p["error"] for p in out["pairs"] if p["error"]}
    assert errors["public.orders:public.nope"]["sqlstate"] == "42P01"
    assert errors["public.orders:public.nope"]["message"] == (
        "table public.nope does not exist on the postgres side, or it has no columns you "
        "may read")
    assert errors["no_colon_here"]["message"] == (
        '"no_colon_here" is not a pair: write A:B (one colon)')
    assert errors["nosuch.orders:my.orders"]["message"].startswith(
        "table nosuch.orders does not exist")
    assert out["summary"] == {"pairs": 5, "equal": 2, "different": 0, "errors": 3}


def test_pairs_come_from_stdin_and_an_unreachable_database_is_one_error(dbs: Dbs) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "schema-diff", "--dsn", dbs.pg,
         "--db", "gone=mysql://nobody@127.0.0.1:1/x", "--db", f"my={dbs.my_url}"],
        capture_output=True, text=True, check=False, timeout=120,
        input="public.orders:my.orders\npublic.orders:gone.orders\n")
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert lines[0] == "public.orders vs my.orders: equal"
    assert lines[1].startswith("public.orders vs gone.orders: error: ")
    assert "Can't connect" in lines[1] and "nobody" not in lines[1].split("error:")[0]
    assert lines[-1] == "2 pairs: 1 equal, 0 different, 1 could not be compared"


def test_bad_arguments_exit_2_with_a_reason(dbs: Dbs) -> None:
    cases = [
        (["x.y.z:public.orders"], '"x" in "x.y.z" is not a database given with --db'),
        (["--parallel", "0", "public.orders:my.orders"], "--parallel must be from 1 to 64, not 0"),
        (["--pairs-file", "/no/such/file"], "cannot read --pairs-file /no/such/file"),
    ]
    for args, message in cases:
        done = dbs.diff(*args, stdin="")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stdout + done.stderr, (args, done.stdout, done.stderr)
    empty = dbs.diff(stdin="")
    assert empty.returncode == 2
    assert empty.stderr.startswith("dms: error: no pairs to compare")
