"""SQLite files into the real PostgreSQL through the backend's COPY text.

Every declared type and edge value goes from a real SQLite file through
``SQLiteReader.stream`` into ``COPY ... FROM STDIN`` of a table built from
``describe()``'s types, and is compared value by value and by an
order-independent checksum.  The part that runs *inside* the server runs as
the server's OS user, which is where a file's permissions matter.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dms_pkg.backends import sqlite as lite
from dms_pkg.backends.sqlite_types import copy_lines, formatters
from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import DmsError
from dms_pkg.install.bundle import preamble
from tests.integration.conftest import Cluster, DatabaseFactory
from tests.unit.backends.sqlite_files import (
    EDGE_DDL,
    EDGE_ROWS,
    checksum,
    expected,
    make_db,
    multiset,
    normalised,
    read_all,
)


@pytest.fixture(scope="module")
def target(databases: DatabaseFactory) -> str:
    return databases.create()


@pytest.fixture
def pg(cluster: Cluster, target: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(cluster.dsn(target)) as conn:
        # Not UTC: a time without an offset must not be read in the session's zone.
        conn.execute("SET TimeZone = 'Asia/Kolkata'")
        conn.commit()
        yield conn


def create_table(pg: psycopg.Connection[Any], name: str, columns: Sequence[SourceColumn]
                 ) -> None:
    """The target table from describe()'s types (names quoted by psycopg; the type
    names are the backend's own fixed spellings)."""
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    pg.execute(sql.SQL("CREATE TABLE {} ({})").format(
        sql.Identifier(name),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type_name))
                           for c in columns)))
    pg.commit()


def copy_in(pg: psycopg.Connection[Any], name: str, columns: Sequence[SourceColumn],
            blocks: Iterator[bytes]) -> int:
    """COPY the blocks into ``name`` in one transaction; the rows PostgreSQL loaded."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(name), sql.SQL(", ").join(sql.Identifier(c.name) for c in columns))
    with pg.cursor() as cur:
        with cur.copy(statement) as copy:
            for block in blocks:
                copy.write(block)
        loaded = cur.rowcount
    pg.commit()
    return loaded


def target_rows(pg: psycopg.Connection[Any], name: str, order: str = "id"
                ) -> list[tuple[Any, ...]]:
    return list(pg.execute(sql.SQL("SELECT * FROM {} ORDER BY {}").format(
        sql.Identifier(name), sql.Identifier(order))).fetchall())


def expected_rows(columns: Sequence[SourceColumn], rows: Sequence[Sequence[Any]]
                  ) -> list[tuple[Any, ...]]:
    return [tuple(expected(c.type_name, v) for c, v in zip(columns, row, strict=True))
            for row in rows]


def test_every_type_and_edge_value_arrives_in_postgres_as_it_was(
        tmp_path: Path, pg: psycopg.Connection[Any]) -> None:
    path = make_db(tmp_path / "edge.sqlite", EDGE_DDL, EDGE_ROWS)
    source = read_all(path, "SELECT * FROM edge ORDER BY id")
    # the untyped column really holds every storage class
    kinds = {k for (k,) in read_all(path, "SELECT typeof(u) FROM edge")}
    assert kinds == {"integer", "real", "text", "blob", "null"}
    with lite.SQLiteReader(path) as reader:
        columns = reader.describe("SELECT * FROM edge")
        create_table(pg, "edge", columns)
        with reader.stream("SELECT * FROM edge", columns=columns) as blocks:
            loaded = copy_in(pg, "edge", columns, blocks)
    assert loaded == len(EDGE_ROWS)
    got = target_rows(pg, "edge")
    want = expected_rows(columns, source)
    for got_row, want_row in zip(got, want, strict=True):
        for column, g, w in zip(columns, got_row, want_row, strict=True):
            assert normalised(g) == normalised(w), (got_row[0], column.name, g, w)
    assert checksum(got) == checksum(want)
    # NULL and '' stay apart, a backslash-N text is text
    by_id = {row[0]: row for row in got}
    names = [c.name for c in columns]
    assert by_id[2][names.index("tx")] is None and by_id[3][names.index("tx")] == ""
    assert by_id[6][names.index("vch")] == "\\N"
    assert by_id[4][names.index("bl")] == b"\x00\\\x00\xff"


def test_floats_sqlite_cannot_store_still_load_exactly(pg: psycopg.Connection[Any]) -> None:
    # SQLite turns NaN into NULL and a stored -0.0 into 0.0, but an expression
    # or a caller's column list may still hand them to the formatter.
    values = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308, 0.1]
    columns = [SourceColumn("id", 0, "bigint"), SourceColumn("x", 0, "double precision"),
               SourceColumn("t", 0, "text")]
    create_table(pg, "floats", columns)
    text = copy_lines([(i, v, v) for i, v in enumerate(values)], formatters(columns))
    assert copy_in(pg, "floats", columns, iter([text.encode()])) == len(values)
    got = target_rows(pg, "floats")
    assert [struct.pack(">d", r[1]) for r in got[1:]] == [struct.pack(">d", v)
                                                         for v in values[1:]]
    assert math.isnan(got[0][1])
    assert pg.execute("SELECT x::text FROM floats WHERE id = 3").fetchone() == ("-0",)
    assert [r[2] for r in got] == ["NaN", "Infinity", "-Infinity", "-0.0", "5e-324",
                                   "1.7976931348623157e+308", "0.1"]


def _many_rows(n: int) -> list[tuple[Any, ...]]:
    out = []
    for i in range(1, n + 1):
        out.append((
            i, None if i % 13 == 0 else i % 101, i * 1.25 if i % 17 else None,
            f"name {i}\t\\ü" if i % 5 else "", bytes([i % 256, 0, 92]) if i % 7 else None,
            (dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500)).isoformat(),
            [i, i * 0.5, f"t{i}", bytes([i % 256])][i % 4],
        ))
    return out


def test_many_chunks_through_one_reader_load_every_row_once(
        tmp_path: Path, pg: psycopg.Connection[Any]) -> None:
    path = make_db(tmp_path / "many.sqlite", """
        CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, amount REAL, name TEXT, b BLOB,
                        d DATE, u)""", _many_rows(20_000), table="t")
    query = "SELECT id, k, amount, name, b, d, u FROM t"
    source = read_all(path, query)
    with lite.SQLiteReader(path) as reader:
        columns = reader.describe(query)
        create_table(pg, "many", columns)
        for key, n in (("id", 8), ("k", 6)):
            pg.execute("TRUNCATE many")
            pg.commit()
            plan = plan_chunks(reader.source(), query, key=key, n_chunks=n)
            assert len(plan.chunks) >= 5
            loaded = 0
            for chunk in plan.chunks:  # one COPY per chunk, as the runtime loads them
                with reader.stream(chunk.query_sql, dict(chunk.params), columns) as blocks:
                    copied = copy_in(pg, "many", columns, blocks)
                assert reader.rows == copied  # what the reader read, PostgreSQL loaded
                loaded += copied
            got = target_rows(pg, "many")
            want = expected_rows(columns, source)
            assert loaded == len(got) == 20_000
            assert checksum(got) == checksum(want), key
            assert multiset(got) == multiset(want)


# ----------------------------------------------------------- inside the server

_PROBE_BODY = '''
import json
from dms_pkg.backends import sqlite as lite
try:
    with lite.SQLiteReader(p_path) as reader:
        with reader.stream(p_sql) as blocks:
            return json.dumps({"copy": b"".join(blocks).decode(), "user": lite.os_user()})
except lite.SQLiteSourceError as exc:
    return json.dumps({"sqlstate": exc.sqlstate, "message": exc.message, "hint": exc.hint,
                       "transient": exc.transient})
'''


@pytest.fixture(scope="module")
def server_probe(cluster: Cluster, installed_db: str) -> Callable[[Path, str], dict[str, Any]]:
    """Read a SQLite file inside the server (as its OS user) with the server-side dms_pkg."""
    with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as conn:
        conn.execute(sql.SQL(
            "CREATE OR REPLACE FUNCTION public.sqlite_probe(p_path text, p_sql text) "
            "RETURNS text LANGUAGE plpython3u AS {}").format(
                sql.Literal(preamble() + _PROBE_BODY)))

    def probe(path: Path, query: str = "SELECT id, v FROM t") -> dict[str, Any]:
        with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as conn:
            row = conn.execute("SELECT public.sqlite_probe(%s, %s)", [str(path), query]
                               ).fetchone()
        assert row is not None
        result: dict[str, Any] = json.loads(row[0])
        return result

    return probe


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the server's OS user may enter (pytest's tmp_path is root's own)."""
    folder = Path(tempfile.mkdtemp(prefix="dms_sqlite_"))
    folder.chmod(0o755)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _small(path: Path, journal: str = "delete") -> Path:
    made = make_db(path, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                   [(1, "a\tb"), (2, None)], table="t", journal=journal)
    made.chmod(0o644)
    return made


def test_inside_the_server_the_file_is_read_as_the_servers_os_user(
        server_probe: Callable[..., dict[str, Any]], shared_dir: Path) -> None:
    readable = _small(shared_dir / "ok.sqlite")
    before = readable.read_bytes()
    result = server_probe(readable)
    assert result["copy"] == "1\ta\\tb\n2\t\\N\n"
    user = result["user"]
    if os.geteuid() == 0:
        assert user == "postgres"  # the sandbox server runs as postgres
    assert readable.read_bytes() == before  # nothing written

    readable.chmod(0o000)
    assert server_probe(readable) == {
        "sqlstate": "08001", "transient": False,
        "message": f"SQLite file {readable} is not readable by the OS user {user}, which reads it",
        "hint": f"give the OS user {user} read permission on the file and search (x) "
        "permission on every directory above it, for example through a group it is in; "
        "inside the database server that user is the server's own"}

    closed = shared_dir / "closed"
    closed.mkdir()
    inside = _small(closed / "db.sqlite")
    closed.chmod(0o000)
    result = server_probe(inside)
    assert (result["sqlstate"], result["message"]) == (
        "08001", f"SQLite file {inside} cannot be reached by the OS user {user}: a directory "
        "above it does not let that user in")

    missing = shared_dir / "missing.sqlite"
    assert server_probe(missing)["message"] == f"SQLite file {missing} does not exist"
    assert not missing.exists()


def test_inside_the_server_a_wal_file_needs_its_shm_or_a_writable_directory(
        server_probe: Callable[..., dict[str, Any]], shared_dir: Path) -> None:
    wal = _small(shared_dir / "wal.sqlite", journal="wal")
    assert not Path(f"{wal}-shm").exists()  # the last connection removed it
    shared_dir.chmod(0o555)
    result = server_probe(wal)
    user = "postgres" if os.geteuid() == 0 else result.get("user", "")
    assert (result["sqlstate"], result["message"], result["transient"]) == (
        "08001", f"SQLite file {wal} is in WAL mode, and the OS user {user} can neither open "
        "its -shm file nor create it (attempt to write a readonly database)", False)
    assert "PRAGMA journal_mode=DELETE" in result["hint"]
    shared_dir.chmod(0o777)  # now the server's user may create the -shm file
    assert server_probe(wal)["copy"] == "1\ta\\tb\n2\t\\N\n"


def test_reading_a_server_file_needs_pg_read_server_files(
        cluster: Cluster, target: str, login_role: Callable[[str | None], str]) -> None:
    login = login_role(None)
    path = Path("/srv/shop.sqlite")
    with psycopg.connect(cluster.dsn(target, login), autocommit=True) as conn, \
            pytest.raises(DmsError) as err:
        lite.require_server_file_access(PsycopgDatabase(conn), path)
    assert (err.value.sqlstate, err.value.message) == (
        "42501", f"reading the SQLite file {path} inside the server needs the privileges of "
        f"pg_read_server_files, which {login} does not have")
    assert err.value.hint == (
        f"the file is read as the server's OS user; a superuser may GRANT pg_read_server_files "
        f"TO {login} (as for COPY FROM a file), or load the file from outside the server with "
        "the dms command or the Python API")
    with cluster.admin() as admin:
        admin.execute(sql.SQL("GRANT pg_read_server_files TO {}").format(sql.Identifier(login)))
    with psycopg.connect(cluster.dsn(target, login), autocommit=True) as conn:
        lite.require_server_file_access(PsycopgDatabase(conn), path)
    with psycopg.connect(cluster.dsn(target), autocommit=True) as conn:  # a superuser
        lite.require_server_file_access(PsycopgDatabase(conn), path)


def test_a_dbcondtls_row_names_the_file(cluster: Cluster, installed_db: str,
                                        tmp_path: Path) -> None:
    path = _small(tmp_path / "row.sqlite")
    with psycopg.connect(cluster.dsn(installed_db), autocommit=True) as conn:
        conn.execute("DELETE FROM dms.dms_dbcondtls WHERE connm LIKE 'lite_%'")
        rows = []
        for name, srvnm, constr in (("lite_srvnm", str(path), None),
                                    ("lite_constr", None, f"sqlite:///{path}"),
                                    ("lite_file", None, f"file={path}")):
            cur = conn.execute(
                "INSERT INTO dms.dms_dbcondtls (connm, dbtyp, dbsrvnm, constr)"
                " VALUES (%s, 'SQLITE', %s, %s) RETURNING conid, connm, dbtyp, dbhost, dbport,"
                " dbsrvnm, usrnm, constr, pwdsrc, pwdref", [name, srvnm, constr])
            assert cur.description is not None
            names = [d.name for d in cur.description]
            rows.append(dict(zip(names, cur.fetchone() or (), strict=True)))
    for row in rows:
        assert lite.path_from_row(row) == path
        with lite.SQLiteReader(lite.path_from_row(row)) as reader, \
                reader.stream("SELECT id, v FROM t") as blocks:
            assert b"".join(blocks) == b"1\ta\\tb\n2\t\\N\n"


def test_the_python_apis_own_connection_is_read_through_its_file(tmp_path: Path) -> None:
    path = _small(tmp_path / "api.sqlite")
    with closing(sqlite3.connect(path)) as own, lite.SQLiteReader(lite.path_of(own)) as reader, \
            reader.stream("SELECT id FROM t") as blocks:
        assert b"".join(blocks) == b"1\n2\n"
