"""MariaDB sources through every route a user has, on the project's real MariaDB server.

The source is read by the MariaDB backend (``dms_pkg.backends.mysql``): the
server renders each row as COPY text and one ``mariadb`` client per worker
streams it.  Each run is compared with the source by count and an
order-independent checksum over normalised values: the MariaDB side is read
by pymysql (its own conversions) and turned into the values PostgreSQL must
hold by code that shares nothing with the backend.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg import errors, sql

from dms_pkg import execute_query_parallel
from dms_pkg.mariadb_sandbox import MariaDBSandbox
from tests.integration.conftest import Cluster, DatabaseFactory, wait_for
from tests.unit.backends.sqlite_files import checksum

ORDERS = 60_000  # even ids 2..120000: odd ids are free for rows written during a run
ORDER_COLUMNS = "id, customer, amount, note, created, paid, ts, big, f, b, e, j"


def my_box(cluster: Cluster) -> MariaDBSandbox:
    """The project's MariaDB sandbox server (the one the ``mariadb`` fixture started)."""
    from dms_pkg.sandbox import default_home

    return cluster.sandbox.mariadb if cluster.sandbox else MariaDBSandbox(default_home())


def my_port(cluster: Cluster) -> int:
    return int(my_box(cluster).port)


class My:
    """The test's MariaDB database, and root's socket connection to it."""

    def __init__(self, args: dict[str, object], port: int) -> None:
        self.args = args
        self.port = port
        self.db = f"dmst_my_{uuid.uuid4().hex[:8]}"

    def connect(self, db: bool = True) -> Any:
        args: dict[str, Any] = dict(self.args)
        return pymysql.connect(**args, database=self.db if db else None, autocommit=True)

    def run(self, *statements: str) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with self.connect() as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
                rows = list(cur.fetchall())
        return rows


ACCOUNTS = {
    # login -> (password, grants)
    "dmst_src": (None, ["SELECT, RELOAD, LOCK TABLES ON *.*"]),
    "dmst_nolock": (None, ["SELECT ON {db}.*"]),
    "dmst_admin": (None, ["ALL PRIVILEGES ON *.*"]),
    "dmst_pw": ("S3cret-pw!x", ["SELECT ON {db}.*"]),
}


@pytest.fixture(scope="module")
def my(mariadb: dict[str, object], cluster: Cluster) -> Iterator[My]:
    box = My(mariadb, my_port(cluster))
    with box.connect(db=False) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{box.db}`")
        for login, (password, grants) in ACCOUNTS.items():
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{login}'@'{host}'")
                cur.execute(f"CREATE USER '{login}'@'{host}'"
                            + (f" IDENTIFIED BY '{password}'" if password else ""))
                for grant in grants:
                    cur.execute(f"GRANT {grant.format(db=box.db)} TO '{login}'@'{host}'")
    box.run(
        "CREATE TABLE orders (id int unsigned PRIMARY KEY, customer int NOT NULL,"
        " amount decimal(12,2), note varchar(200), created datetime(6), paid tinyint(1),"
        " ts timestamp NULL, big bigint unsigned, f float, b varbinary(10),"
        " e enum('new','paid'), j json)",
        f"INSERT INTO orders SELECT 2 * seq, seq % 977, seq * 1.25,"
        f" IF(seq % 10 = 0, NULL, CONCAT('note', CHAR(9), seq, CHAR(92), 'x', CHAR(10), 'é')),"
        f" '2024-01-02 03:04:05.123456' + INTERVAL seq SECOND, seq % 2,"
        f" '2024-05-05 10:00:00' + INTERVAL seq MINUTE, 18446744073709551615 - seq, seq / 3,"
        f" UNHEX(LPAD(HEX(seq), 8, '0')), IF(seq % 2, 'new', 'paid'),"
        f" JSON_OBJECT('k', seq, 's', 'a\"b')"
        f" FROM seq_1_to_{ORDERS}",
        "ANALYZE TABLE orders")
    yield box
    with box.connect(db=False) as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{box.db}`")
        for login in ACCOUNTS:
            for host in ("localhost", "127.0.0.1"):
                cur.execute(f"DROP USER IF EXISTS '{login}'@'{host}'")


@pytest.fixture(scope="module")
def home(cluster: Cluster, databases: DatabaseFactory, my: My) -> str:
    name = databases.create(installed=True)
    with psycopg.connect(cluster.dsn(name), autocommit=True) as conn:
        for connm, login in (("shop", "dmst_src"), ("shop_nolock", "dmst_nolock"),
                             ("shop_admin", "dmst_admin")):
            conn.execute("INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm,"
                         " usrnm, pwdsrc) VALUES (%s, 'MARIADB', '127.0.0.1', %s, %s, %s,"
                         " 'NONE')", [connm, my.port, my.db, login])
    return name


def conid(cluster: Cluster, home: str, name: str = "shop") -> int:
    with psycopg.connect(cluster.dsn(home)) as conn:
        row = conn.execute("SELECT conid FROM dms.dms_dbcondtls WHERE connm = %s",
                           [name]).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ expected values

def pg_value(column: str, value: Any) -> Any:
    """What PostgreSQL must hold for a MariaDB value read by pymysql (UTC session)."""
    if value is None:
        return None
    if column == "paid":
        return bool(value)
    if column == "ts":
        return value.replace(tzinfo=dt.UTC)
    if column == "b":
        return bytes(value)
    if column == "j":
        return canonical_json(json.loads(value))
    if column == "big":
        return decimal.Decimal(value)  # numeric(20,0)
    return value


def canonical_json(value: Any) -> str:
    """JSON text independent of key order (jsonb keeps its own)."""
    return json.dumps(value, sort_keys=True)


# pymysql reads a FLOAT as MariaDB prints it (6 digits); its exact value is its DOUBLE.
SOURCE_QUERY = "SELECT " + ORDER_COLUMNS.replace(" f,", " CAST(f AS DOUBLE) AS f,") + " FROM orders"


def source_rows(my: My, query: str = SOURCE_QUERY) -> list[Any]:
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(query)
        names = [d[0] for d in cur.description]
        return [tuple(pg_value(n, v) for n, v in zip(names, row, strict=True))
                for row in cur.fetchall()]


def loaded(cluster: Cluster, db: str, table: str) -> list[Any]:
    with psycopg.connect(cluster.dsn(db)) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        rows = conn.execute(sql.SQL(f"SELECT {ORDER_COLUMNS} FROM {{}}").format(
            sql.Identifier(table))).fetchall()
    # psycopg reads a real from its shortest text: back to the float32 it stands for.
    return [tuple(_float32(v) if i == 8 and v is not None else
                  canonical_json(v) if i == 11 and v is not None else v
                  for i, v in enumerate(row)) for row in rows]


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def call(cluster: Cluster, home: str, user: str | None, source: int, table: str,
         params: dict[str, Any], query: str = f"SELECT {ORDER_COLUMNS} FROM orders") -> int:
    with psycopg.connect(cluster.dsn(home, user), autocommit=True) as conn:
        row = conn.execute(
            "CALL dms.execute_query_parallel(%s, %s, NULL, 'public', %s, %s::jsonb)",
            [source, query, table, json.dumps(params)]).fetchone()
    assert row is not None
    return int(row[0])


def run_row(cluster: Cluster, home: str, run_id: int) -> dict[str, Any]:
    with psycopg.connect(cluster.dsn(home)) as conn, conn.cursor(
            row_factory=psycopg.rows.dict_row) as cur:
        row = cur.execute("SELECT * FROM dms.run_progress WHERE run_id = %s",
                          [run_id]).fetchone()
    assert row is not None
    return row


def runs(cluster: Cluster, home: str) -> int:
    with psycopg.connect(cluster.dsn(home)) as conn:
        row = conn.execute("SELECT count(*) FROM dms.run").fetchone()
    assert row is not None
    return int(row[0])


def table_exists(cluster: Cluster, home: str, table: str) -> bool:
    with psycopg.connect(cluster.dsn(home)) as conn:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"]).fetchone()
    return bool(row and row[0])


# ------------------------------------------------------------------ moves

@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_sql_api_moves_a_mariadb_table(cluster: Cluster, home: str, my: My,
                                           workers: int) -> None:
    table = f"orders_w{workers}"
    run_id = call(cluster, home, None, conid(cluster, home), table,
                  {"max_workers": workers, "chunk_size": 10_000, "create_target": True,
                   "min_rows_for_parallel": 0})
    run = run_row(cluster, home, run_id)
    assert (run["state"], run["path"], run["workers"]) == ("SUCCEEDED", "copy_text", workers), run
    assert run["chunks_total"] >= 6 and run["rows_done"] == ORDERS
    assert checksum(loaded(cluster, home, table)) == checksum(source_rows(my))
    with psycopg.connect(cluster.dsn(home)) as conn:
        types: dict[str, str] = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0", [table]).fetchall())
    assert types == {
        "id": "bigint", "customer": "integer", "amount": "numeric(12,2)",
        "note": "character varying(200)", "created": "timestamp(6) without time zone",
        "paid": "boolean", "ts": "timestamp with time zone", "big": "numeric(20,0)",
        "f": "real", "b": "bytea", "e": "text", "j": "jsonb"}


EDGE_DDL = (
    "CREATE TABLE edge (id int PRIMARY KEY, ti tinyint, tu tinyint unsigned, su smallint unsigned,"
    " mi mediumint, iu int unsigned, bi bigint, bu bigint unsigned, b1 tinyint(1), bo bool,"
    " d65 decimal(65,30), dc decimal(5,2), fl float, db double, dt date, dtm datetime(6),"
    " tsp timestamp(3) NULL, tm time, yr year, ch char(3), vc varchar(20), tx text,"
    " mt mediumtext, en enum('a','b c','ü'), st set('x','y','z'), bt bit(5), bn binary(3),"
    " vb varbinary(300), bl blob, js json, u8 varchar(10) CHARACTER SET utf8mb4,"
    " l1 varchar(10) CHARACTER SET latin1)")

EDGE_TYPES = {
    "id": "integer", "ti": "smallint", "tu": "smallint", "su": "integer", "mi": "integer",
    "iu": "bigint", "bi": "bigint", "bu": "numeric(20,0)", "b1": "boolean", "bo": "boolean",
    "d65": "numeric(65,30)", "dc": "numeric(5,2)", "fl": "real", "db": "double precision",
    "dt": "date", "dtm": "timestamp(6) without time zone",
    "tsp": "timestamp(3) with time zone", "tm": "time without time zone", "yr": "smallint",
    "ch": "character(3)", "vc": "character varying(20)", "tx": "text", "mt": "text",
    "en": "text", "st": "text", "bt": "bit(5)", "bn": "bytea", "vb": "bytea", "bl": "bytea",
    "js": "jsonb", "u8": "character varying(10)", "l1": "character varying(10)",
}

ALL_BYTES = bytes(range(256))


def test_every_mapped_type_arrives_with_its_value(cluster: Cluster, home: str,
                                                  my: My) -> None:
    my.run(EDGE_DDL)
    with my.connect() as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+02:00'")  # TIMESTAMP is a moment: stored in UTC
        cur.executemany(
            "INSERT INTO edge VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(1, -128, 255, 65535, -8388608, 4294967295, -9223372036854775808,
              18446744073709551615, 1, 0, "12345678901234567890.123456789012345678901234567890",
              "-999.99", 3.4028234e38, 1.7976931348623157e308, "1000-01-01",
              "9999-12-31 23:59:59.999999", "2038-01-19 05:14:07.999", "23:59:59", 2155,
              "abc", "tab\there", "new\nline\\back\rcr", "x" * 70_000, "b c", "x,z", 0b10101,
              b"\x00\x01\x02", ALL_BYTES, ALL_BYTES * 10, '{"ü": [1, "\\t", null]}',
              "😀 emoji", "façade"),
             (2, 0, 0, 0, 0, 0, 0, 0, 0, 1, "0", "0", 0.1, -0.0, "2024-02-29",
              "2024-02-29 12:00:00", "1970-01-01 02:00:01", "00:00:00", 1901, "", "", "\\N",
              "", "ü", "", 0, b"", b"", b"", "[]", "", ""),
             (3,) + (None,) * 31])
    run_id = call(cluster, home, None, conid(cluster, home), "edge",
                  {"create_target": True}, query="SELECT * FROM edge")
    assert run_row(cluster, home, run_id)["state"] == "SUCCEEDED"
    with psycopg.connect(cluster.dsn(home)) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        types: dict[str, str] = dict(conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'edge'::regclass AND attnum > 0").fetchall())
        got = {row[0]: row for row in conn.execute("SELECT * FROM edge").fetchall()}
    assert types == EDGE_TYPES
    first = dict(zip(EDGE_TYPES, got[1], strict=True))
    assert first == {
        "id": 1, "ti": -128, "tu": 255, "su": 65535, "mi": -8388608, "iu": 4294967295,
        "bi": -9223372036854775808, "bu": decimal.Decimal(18446744073709551615), "b1": True,
        "bo": False, "d65": decimal.Decimal("12345678901234567890.123456789012345678901234567890"),
        "dc": decimal.Decimal("-999.99"), "fl": pytest.approx(3.4028234e38, rel=1e-7),
        "db": 1.7976931348623157e308, "dt": dt.date(1000, 1, 1),
        "dtm": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tsp": dt.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=dt.UTC),
        "tm": dt.time(23, 59, 59), "yr": 2155, "ch": "abc", "vc": "tab\there",
        "tx": "new\nline\\back\rcr", "mt": "x" * 70_000, "en": "b c", "st": "x,z",
        "bt": "10101", "bn": b"\x00\x01\x02", "vb": ALL_BYTES, "bl": ALL_BYTES * 10,
        "js": {"ü": [1, "\t", None]}, "u8": "😀 emoji", "l1": "façade"}
    second = dict(zip(EDGE_TYPES, got[2], strict=True))
    assert (second["fl"], second["db"], second["tsp"], second["tx"], second["en"],
            second["ch"], second["bt"], second["vb"], second["js"]) == (
        pytest.approx(0.1, rel=1e-7), -0.0,
        dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC), "\\N", "ü", "   ", "00000", b"", [])
    assert got[3][1:] == (None,) * 31


def test_zero_dates_are_refused_naming_the_column_or_loaded_as_null(
        cluster: Cluster, home: str, my: My) -> None:
    my.run("CREATE TABLE zd (id int PRIMARY KEY, made date, seen datetime)",
           "SET SESSION sql_mode = ''",
           "INSERT INTO zd VALUES (1, '2024-01-01', '0000-00-00 00:00:00'),"
           " (2, '0000-00-00', '2024-01-01 10:00:00'), (3, NULL, NULL)")
    source = conid(cluster, home)
    before = runs(cluster, home)
    with pytest.raises(psycopg.Error) as err:
        call(cluster, home, None, source, "zd", {"create_target": True},
             query="SELECT id, made, seen FROM zd")
    assert ("[22008] column seen holds the MariaDB zero date 0000-00-00, which PostgreSQL has "
            "no value for") in str(err.value)
    with psycopg.connect(cluster.dsn(home)) as conn:
        assert conn.execute("SELECT count(*) FROM zd").fetchone() == (0,)
    assert runs(cluster, home) == before + 1
    run_id = call(cluster, home, None, source, "zd", {"mysql_zero_dates": "null"},
                  query="SELECT id, made, seen FROM zd")
    assert run_row(cluster, home, run_id)["state"] == "SUCCEEDED"
    with psycopg.connect(cluster.dsn(home)) as conn:
        rows = conn.execute("SELECT id, made, seen FROM zd ORDER BY id").fetchall()
    assert rows == [(1, dt.date(2024, 1, 1), None), (2, None, dt.datetime(2024, 1, 1, 10)),
                    (3, None, None)]


def test_rows_written_during_a_run_reach_the_target_all_or_none(
        cluster: Cluster, home: str, my: My) -> None:
    """A writer commits pairs of rows, one at each end of the key range, during a
    4-worker run: every worker reads one moment, so each pair is loaded whole or
    not at all."""
    my.run("CREATE TABLE live LIKE orders", "INSERT INTO live SELECT * FROM orders")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with my.connect() as conn, conn.cursor() as cur:
            i = 0
            # Up to ORDERS / 2 pairs fit between the two ends; the writer is paced
            # so that it is still writing when the run ends, however fast both are.
            while not stop.is_set() and i < ORDERS // 2 - 1:
                low, high = 2 * i + 1, 2 * ORDERS - 2 * i - 1
                try:
                    cur.execute("INSERT INTO live (id, customer) VALUES (%s, 0), (%s, 0)",
                                [low, high])
                except pymysql.err.OperationalError:  # a lock wait timed out: try again
                    continue
                written.append(i)
                i += 1
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        run_id = call(cluster, home, None, conid(cluster, home), "live",
                      {"max_workers": 4, "chunk_size": 5_000, "create_target": True,
                       "min_rows_for_parallel": 0},
                      query="SELECT id, customer FROM live")
        during = len(written)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    run = run_row(cluster, home, run_id)
    assert run["state"] == "SUCCEEDED", run
    assert len(written) > during > 0  # the writer was writing before, during and after
    with psycopg.connect(cluster.dsn(home)) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM live WHERE id % 2 = 1")}
        total = conn.execute("SELECT count(*) FROM live").fetchone()
    pairs = {i for i in range(len(written)) if 2 * i + 1 in ids}
    assert all((2 * ORDERS - 2 * i - 1 in ids) == (i in pairs) for i in range(len(written)))
    assert pairs == set(range(len(pairs)))  # a prefix of what was written: one moment
    assert total == (ORDERS + 2 * len(pairs),)


def test_a_killed_reader_connection_is_retried_and_nothing_is_lost_or_doubled(
        cluster: Cluster, home: str, my: My) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        with my.connect() as conn, conn.cursor() as cur:
            while not stop.is_set() and not killed:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER ="
                            " 'dmst_src' AND INFO LIKE 'SELECT CONCAT_WS%%'")
                for (thread_id,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL CONNECTION {int(thread_id)}")
                    except pymysql.err.OperationalError:  # it ended first
                        continue
                    killed.append(int(thread_id))
                    break
                time.sleep(0.005)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        run_id = call(cluster, home, None, conid(cluster, home), "orders_killed",
                      {"max_workers": 2, "chunk_size": 2_000, "create_target": True,
                       "min_rows_for_parallel": 0, "retry_initial_delay": 0.1})
    finally:
        stop.set()
        thread.join()
    assert killed, "no reader was found running to kill"
    run = run_row(cluster, home, run_id)
    assert run["state"] == "SUCCEEDED", run
    with psycopg.connect(cluster.dsn(home)) as conn:
        retried = conn.execute("SELECT count(*) FROM dms.chunk WHERE run_id = %s AND attempts"
                               " > 1", [run_id]).fetchone()
    assert retried is not None and retried[0] >= 1
    assert checksum(loaded(cluster, home, "orders_killed")) == checksum(source_rows(my))


def test_a_mariadb_restart_mid_run_is_retried_and_nothing_is_lost_or_doubled(
        cluster: Cluster, home: str, my: My) -> None:
    """The MariaDB server is stopped while a 2-worker run reads its chunks, and
    started again on the same port and socket (the sandbox's own stop and start)
    only once a worker has tried to reconnect more often than max_retries allows:
    a server that cannot be reached is waited for, so the broken chunks are
    retried on new sessions and the run loads every row exactly once."""
    box = my_box(cluster)
    table = "orders_restarted"
    max_retries = 3
    seen: list[int] = []  # a reader's thread, running when the server was stopped
    refused: list[tuple[int, int]] = []  # (chunk, attempts) refused while it was down
    trouble: list[BaseException] = []
    done = threading.Event()

    def tried_past_max_retries() -> list[tuple[int, int]]:
        """Chunks whose reconnects were refused more than max_retries times."""
        with psycopg.connect(cluster.dsn(home)) as conn:
            rows = conn.execute(
                "SELECT c.chunk_no, c.attempts FROM dms.chunk c JOIN dms.run r USING (run_id)"
                " WHERE r.target_table = %s AND r.state = 'RUNNING' AND c.sqlstate = '08001'"
                " AND c.attempts > %s", [table, max_retries + 1]).fetchall()
        return [(int(chunk), int(attempts)) for chunk, attempts in rows]

    def restarter() -> None:
        try:
            with my.connect() as conn, conn.cursor() as cur:
                while not done.is_set() and not seen:
                    cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER ="
                                " 'dmst_src' AND INFO LIKE 'SELECT CONCAT_WS%%'")
                    seen.extend(int(row[0]) for row in cur.fetchall()[:1])
                    time.sleep(0.005)
            if seen:
                box.stop()
                refused.extend(wait_for(tried_past_max_retries,
                                        what="reconnects refused past max_retries"))
        except BaseException as exc:  # reported by the test, not lost in the thread
            trouble.append(exc)
        finally:
            box.start()  # idempotent: the server is up for the tests that follow

    thread = threading.Thread(target=restarter)
    thread.start()
    try:
        run_id = call(cluster, home, None, conid(cluster, home), table,
                      {"max_workers": 2, "chunk_size": 2_000, "create_target": True,
                       "min_rows_for_parallel": 0, "max_retries": max_retries,
                       "retry_initial_delay": 0.1})
    finally:
        done.set()
        thread.join()
    assert not trouble, trouble
    assert seen and refused, "the server was not restarted while a reader was reading"
    run = run_row(cluster, home, run_id)
    assert (run["state"], run["workers"], run["rows_done"]) == ("SUCCEEDED", 2, ORDERS), run
    assert run["chunks_total"] >= 20
    # A reconnected worker reads as of its own moment, and the run does not say so
    # (docs/source-mysql.md, "When the server restarts").
    assert (run["message"], run["notes"]) == (
        f"{ORDERS} rows in {run['chunks_total']} chunks", [])
    with psycopg.connect(cluster.dsn(home)) as conn:
        retried = conn.execute("SELECT count(*) FROM dms.chunk WHERE run_id = %s AND attempts"
                               " > 1", [run_id]).fetchone()
        counts = conn.execute(sql.SQL("SELECT count(*), count(DISTINCT id) FROM {}").format(
            sql.Identifier(table))).fetchone()
    assert retried is not None and retried[0] >= 1
    assert counts == (ORDERS, ORDERS)  # nothing lost, nothing doubled
    assert checksum(loaded(cluster, home, table)) == checksum(source_rows(my))
    # The server is usable again for what follows (the module's own connections too).
    assert my.run("SELECT COUNT(*) FROM orders") == [(ORDERS,)]


# ------------------------------------------------------------------ consistency settings

def test_a_login_that_may_not_lock_is_refused_unless_consistency_is_none(
        cluster: Cluster, home: str, my: My) -> None:
    source = conid(cluster, home, "shop_nolock")
    params = {"max_workers": 2, "chunk_size": 20_000, "create_target": True,
              "min_rows_for_parallel": 0}
    with pytest.raises(errors.InsufficientPrivilege) as err:
        call(cluster, home, None, source, "orders_nolock", params)
    assert err.value.diag.message_primary == (
        f"dms: connection {source} (shop_nolock): the login may neither run FLUSH TABLES WITH "
        "READ LOCK (RELOAD) nor LOCK TABLES `orders` READ (LOCK TABLES), which several workers "
        "need to read one moment of the source")
    assert '"mysql_consistency": "none"' in (err.value.diag.message_hint or "")
    with psycopg.connect(cluster.dsn(home)) as conn:
        assert conn.execute("SELECT count(*) FROM orders_nolock").fetchone() == (0,)
    run_id = call(cluster, home, None, source, "orders_nolock",
                  {**params, "mysql_consistency": "none"})
    run = run_row(cluster, home, run_id)
    assert run["state"] == "SUCCEEDED"
    assert run["notes"] == [
        "consistency: mysql_consistency is none, so each worker reads the source as of the "
        "moment its own transaction began; rows written meanwhile may be seen by some chunks "
        "and not others"]
    assert checksum(loaded(cluster, home, "orders_nolock")) == checksum(source_rows(my))


# ------------------------------------------------------------------ bad input

def test_a_query_with_limit_runs_as_one_chunk_and_says_why(cluster: Cluster, home: str,
                                                           my: My) -> None:
    run_id = call(cluster, home, None, conid(cluster, home), "orders_limit",
                  {"max_workers": 4, "chunk_size": 5_000, "create_target": True,
                   "min_rows_for_parallel": 0},
                  query=f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY id LIMIT 7000")
    run = run_row(cluster, home, run_id)
    assert (run["state"], run["chunks_total"], run["workers"]) == ("SUCCEEDED", 1, 1)
    assert "LIMIT" in run["refused_reason"], run["refused_reason"]
    with psycopg.connect(cluster.dsn(home)) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM orders_limit").fetchone() == (
            7000, 14000)


def test_an_unsupported_column_type_is_named_and_nothing_is_written(
        cluster: Cluster, home: str, my: My) -> None:
    my.run("CREATE TABLE places (id int PRIMARY KEY, spot point)",
           "INSERT INTO places VALUES (1, POINT(1, 2))")
    before = runs(cluster, home)
    with pytest.raises(errors.FeatureNotSupported) as err:
        call(cluster, home, None, conid(cluster, home), "places", {"create_target": True},
             query="SELECT id, spot FROM places")
    assert err.value.diag.message_primary == (
        "dms: column spot has the MariaDB/MySQL type point, which has no PostgreSQL type "
        "dms_pkg maps it to")
    assert "ST_AsText(spot) AS spot" in (err.value.diag.message_hint or "")
    assert runs(cluster, home) == before
    assert not table_exists(cluster, home, "places")


def test_an_unreachable_server_is_refused_before_anything_is_written(
        cluster: Cluster, home: str, my: My) -> None:
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm, pwdsrc)"
            " VALUES ('nowhere', 'MYSQL', '127.0.0.1', 1, 'shop', 'x', 'NONE') RETURNING conid"
        ).fetchone()
    assert row is not None
    before = runs(cluster, home)
    with pytest.raises(errors.SqlclientUnableToEstablishSqlconnection) as err:
        call(cluster, home, None, int(row[0]), "nowhere", {"create_target": True})
    assert (err.value.diag.message_primary or "").startswith(
        f"dms: cannot connect to the MariaDB/MySQL source connection {row[0]} (nowhere): "
        "Can't connect to MySQL server on '127.0.0.1'")
    assert "DBHOST and DBPORT" in (err.value.diag.message_hint or "")
    assert runs(cluster, home) == before and not table_exists(cluster, home, "nowhere")


def test_a_wrong_password_is_refused_and_appears_nowhere(cluster: Cluster, home: str,
                                                         my: My) -> None:
    wrong = "wr0ng-Pa55word"
    url = f"mysql://dmst_pw:{wrong}@127.0.0.1:{my.port}/{my.db}"
    with pytest.raises(Exception) as err:
        execute_query_parallel(source_conn=url, source_sql="SELECT id FROM orders",
                               target_conn=cluster.dsn(home), target_schema="public",
                               target_table="pw_orders", create_target=True)
    assert getattr(err.value, "sqlstate", None) == "28P01"
    assert "Access denied for user 'dmst_pw'" in str(err.value)
    assert wrong not in str(err.value) and wrong not in repr(err.value)
    # The right one, kept only in memory, works.
    result = execute_query_parallel(
        source_conn=url.replace(wrong, ACCOUNTS["dmst_pw"][0] or ""),
        source_sql="SELECT id FROM orders", target_conn=cluster.dsn(home), target_schema="public",
        target_table="pw_orders", create_target=True, max_workers=2, chunk_size=20_000,
        min_rows_for_parallel=0, mysql_consistency="none")
    assert result.total_rows_successful == ORDERS
    with psycopg.connect(cluster.dsn(home)) as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM pw_orders").fetchone() == (
            ORDERS, ORDERS * (ORDERS + 1))
        logged = conn.execute("SELECT string_agg(coalesce(message, '') || coalesce("
                              "last_error, ''), ' ') FROM dms.run r LEFT JOIN dms.chunk c"
                              " USING (run_id)").fetchone()
    assert logged is None or logged[0] is None or wrong not in logged[0]


def test_a_password_from_an_unset_environment_variable_is_named(
        cluster: Cluster, home: str, my: My) -> None:
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbhost, dbport, dbsrvnm, usrnm, pwdsrc,"
            " pwdref) VALUES ('shop_env', 'MARIADB', '127.0.0.1', %s, %s, 'dmst_pw', 'ENV',"
            " 'DMST_NO_SUCH_PASSWORD') RETURNING conid", [my.port, my.db]).fetchone()
    assert row is not None
    before = runs(cluster, home)
    with pytest.raises(psycopg.Error) as err:
        call(cluster, home, None, int(row[0]), "env_orders", {"create_target": True})
    assert "environment variable DMST_NO_SUCH_PASSWORD" in str(err.value)
    assert runs(cluster, home) == before


def test_an_operator_is_refused_a_login_with_every_privilege(
        cluster: Cluster, home: str, my: My, login_role: Any) -> None:
    operator = login_role("dms_operator")
    source = conid(cluster, home, "shop_admin")
    with psycopg.connect(cluster.dsn(home), autocommit=True) as conn:
        conn.execute("SELECT dms.grant_connection(%s, %s)", [source, operator])
    before = runs(cluster, home)
    with pytest.raises(errors.InsufficientPrivilege) as err:
        call(cluster, home, operator, source, "admin_orders", {"create_target": True})
    assert err.value.diag.message_primary == (
        f"dms: connection {source} (shop_admin) logs in as a MariaDB account with ALL "
        "PRIVILEGES ON *.*, which would run your SQL with more than you may have")
    assert runs(cluster, home) == before and not table_exists(cluster, home, "admin_orders")


# ------------------------------------------------------------------ other routes

def test_the_python_api_reads_a_pymysql_connection(cluster: Cluster, home: str,
                                                   my: My) -> None:
    with my.connect() as source:
        result = execute_query_parallel(
            source_conn=source, source_sql=f"SELECT {ORDER_COLUMNS} FROM orders",
            target_conn=cluster.dsn(home), target_schema="public", target_table="api_orders",
            create_target=True, max_workers=2, chunk_size=10_000, min_rows_for_parallel=0)
    assert result.total_rows_successful == ORDERS
    assert result.notes == []  # one moment for every worker: nothing to say
    assert checksum(loaded(cluster, home, "api_orders")) == checksum(source_rows(my))
    # Given up, the run says so, as the SQL API's runs do in dms.run.notes.
    with my.connect() as source:
        result = execute_query_parallel(
            source_conn=source, source_sql=f"SELECT {ORDER_COLUMNS} FROM orders",
            target_conn=cluster.dsn(home), target_schema="public",
            target_table="api_orders_each", create_target=True, max_workers=2,
            chunk_size=10_000, min_rows_for_parallel=0, mysql_consistency="none")
    assert result.total_rows_successful == ORDERS
    assert result.notes == [
        "consistency: mysql_consistency is none, so each worker reads the source as of the "
        "moment its own transaction began; rows written meanwhile may be seen by some chunks "
        "and not others"]


def test_dms_run_reads_a_mysql_url(cluster: Cluster, home: str, my: My) -> None:
    url = f"mysql://dmst_src@127.0.0.1:{my.port}/{my.db}"
    done = subprocess.run(
        [sys.executable, "-m", "dms_pkg.cli", "run", "--dsn", cluster.dsn(home),
         "--source-dsn", url, "--sql", f"SELECT {ORDER_COLUMNS} FROM orders",
         "--table", "cli_orders", "--params", json.dumps(
             {"create_target": True, "max_workers": 2, "chunk_size": 20_000,
              "min_rows_for_parallel": 0}), "--no-watch"],
        capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert done.returncode == 0, done.stderr
    assert f"{ORDERS:,} rows" in done.stdout, done.stdout
    assert checksum(loaded(cluster, home, "cli_orders")) == checksum(source_rows(my))


def test_one_client_session_frames_every_chunk_whatever_its_size(my: My) -> None:
    """A reader's one client process, chunk after chunk: no rows, one row, more than a
    block, and a failing statement that ends the session with MariaDB's error."""
    from dms_pkg.backends.mysql_errors import MySQLError
    from dms_pkg.backends.mysql_reader import BLOCK_BYTES, ClientSession, client_program

    program = client_program()
    assert program is not None
    params = {"unix_socket": str(my.args["unix_socket"]), "user": str(my.args["user"]),
              "database": my.db}
    session = ClientSession(program, params, None, snapshot=True, where="test")
    try:
        def read(sql: str) -> bytes:
            return b"".join(bytes(b) for b in session.copy(sql))

        assert read("SELECT id FROM orders WHERE id < 0") == b""
        assert read("SELECT 'a\tb' FROM orders WHERE id = 2") == b"a\tb\n"
        big = read("SELECT CONCAT_WS(CHAR(9), id, REPEAT('x', 200)) FROM orders")
        assert len(big) > 2 * BLOCK_BYTES
        assert big.count(b"\n") == ORDERS and big.endswith(b"x" * 200 + b"\n")
        assert read(f"SELECT {literal_sentinel(session)} FROM orders WHERE id = 4") == (
            b"x" + session.sentinel + b"\n")
        with pytest.raises(MySQLError) as err:
            read("SELECT no_such_column FROM orders")
        assert (err.value.errno, err.value.pg_sqlstate) == (1054, "42703")
        assert session.broken
    finally:
        session.close()


def literal_sentinel(session: Any) -> str:
    """A row that holds the sentinel after another character: not the end of a chunk."""
    sentinel: bytes = session.sentinel
    return "CONCAT('x', '" + sentinel.decode() + "')"
