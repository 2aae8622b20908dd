"""Where a SQLite source is, opening it read-only, and what the connection refuses.

Unreadable files are checked as the server's OS user in
tests/integration/test_sqlite_source.py: these tests may run as root, who
reads every file.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from dms_pkg.backends import sqlite as lite
from dms_pkg.errors import DmsError
from tests.unit.backends.sqlite_files import make_db

ROW: dict[str, Any] = {"conid": 3, "connm": "shop_lite", "dbtyp": "SQLITE", "dbhost": None,
                       "dbport": None, "dbsrvnm": None, "usrnm": None, "constr": None,
                       "pwdsrc": "NONE", "pwdref": None}


@pytest.mark.parametrize(("changes", "path"), [
    ({"dbsrvnm": "/srv/data/shop.sqlite"}, "/srv/data/shop.sqlite"),
    ({"constr": "file=/srv/data/shop.sqlite"}, "/srv/data/shop.sqlite"),
    ({"constr": "file='/srv/my data/shop.sqlite'"}, "/srv/my data/shop.sqlite"),
    ({"constr": "sqlite:///srv/data/shop.sqlite"}, "/srv/data/shop.sqlite"),
    ({"constr": "sqlite:////srv/data/shop.sqlite"}, "/srv/data/shop.sqlite"),
    ({"constr": "sqlite:///srv/my%20data/a%3Fb.sqlite"}, "/srv/my data/a?b.sqlite"),
    ({"dbsrvnm": "/srv/a.sqlite", "constr": "file=/srv/a.sqlite", "pwdsrc": None},
     "/srv/a.sqlite"),
])
def test_a_connection_row_names_the_file(changes: dict[str, Any], path: str) -> None:
    assert lite.path_from_row({**ROW, **changes}) == Path(path)


@pytest.mark.parametrize(("changes", "message", "hint"), [
    ({"dbsrvnm": "/a.sqlite", "pwdsrc": "ENV", "pwdref": "X"},
     "connection 3 (shop_lite) is a SQLite file and has PWDSRC ENV; a SQLite file has no "
     "password",
     "set PWDSRC to NONE and PWDREF to NULL: who may read the file is decided by its file "
     "permissions"),
    ({"dbsrvnm": "/a.sqlite", "dbhost": "db1"},
     "connection 3 (shop_lite) is a SQLite file, which has no host: DBHOST must be empty",
     "a SQLite file is read on the database server's own file system; put its absolute path "
     "in DBSRVNM"),
    ({"dbsrvnm": "/a.sqlite", "usrnm": "etl"},
     "connection 3 (shop_lite) is a SQLite file, which has no login: USRNM must be empty", None),
    ({}, "connection 3 (shop_lite) names no SQLite file",
     "put the file's absolute path in DBSRVNM"),
    ({"dbsrvnm": "shop.sqlite"},
     "connection 3 (shop_lite) names the SQLite file shop.sqlite, which is not an absolute path",
     "a relative path would be read from the server's data directory; give the whole path, "
     "for example /srv/data/shop.sqlite"),
    ({"dbsrvnm": "/a.sqlite", "constr": "file=/b.sqlite"},
     "connection 3 (shop_lite) names two SQLite files: /a.sqlite in DBSRVNM and /b.sqlite in "
     "CONSTR", "keep the path in one of them"),
    ({"constr": "host=db1 dbname=shop"},
     "CONSTR of connection 3 (shop_lite) does not name a SQLite file",
     "use 'file=/path/to/shop.sqlite' or 'sqlite:///path/to/shop.sqlite', or put the path in "
     "DBSRVNM and leave CONSTR empty"),
    ({"constr": "sqlite://db1/shop.sqlite"},
     "the SQLite URL 'sqlite://db1/shop.sqlite' has a host, a query or a fragment; a SQLite "
     "URL is only sqlite:/// and a path", None),
    ({"dbtyp": "MYSQL", "dbsrvnm": "/a.sqlite"},
     "connection 3 (shop_lite) is a MYSQL connection, not a SQLite file", None),
])
def test_a_connection_row_that_names_no_usable_file_is_refused(
        changes: dict[str, Any], message: str, hint: str | None) -> None:
    with pytest.raises(DmsError) as err:
        lite.path_from_row({**ROW, **changes})
    assert (err.value.sqlstate, err.value.message) == ("22023", message)
    if hint is not None:
        assert err.value.hint == hint


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://h/db", "'mysql://h/db' is not a sqlite:/// URL"),
    ("sqlite:///a.db?mode=rw", "the SQLite URL 'sqlite:///a.db?mode=rw' has a host, a query or "
     "a fragment; a SQLite URL is only sqlite:/// and a path"),
    ("sqlite://", "the SQLite URL 'sqlite://' names no absolute path"),
])
def test_urls_other_than_sqlite_and_a_path_are_refused(url: str, message: str) -> None:
    with pytest.raises(DmsError) as err:
        lite.path_from_url(url)
    assert (err.value.sqlstate, err.value.message) == ("22023", message)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return make_db(tmp_path / "shop.sqlite", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
                   [(1, "a"), (2, "b")], table="t")


@pytest.fixture
def conn(db: Path) -> Iterator[lite.SQLiteConnection]:
    with closing(lite.connect(db)) as opened:
        yield opened


def test_missing_files_directories_and_other_files_are_refused_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(lite.SQLiteSourceError) as err:
        lite.connect(missing)
    assert (err.value.sqlstate, err.value.message, err.value.transient) == (
        "58P01", f"SQLite file {missing} does not exist", False)
    assert not missing.exists()  # opening never creates the file
    (tmp_path / "plain").write_text("x")
    with pytest.raises(lite.SQLiteSourceError) as err:
        lite.connect(tmp_path / "plain" / "db.sqlite")
    assert (err.value.sqlstate, err.value.message) == (
        "58P01", f"SQLite file {tmp_path}/plain/db.sqlite does not exist: a part of its path is "
        "a file, not a directory")
    with pytest.raises(lite.SQLiteSourceError) as err:
        lite.connect(tmp_path)
    assert (err.value.sqlstate, err.value.message) == (
        "08001", f"SQLite file {tmp_path} is a directory, not a file")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database, just text\n" * 200)
    with pytest.raises(lite.SQLiteSourceError) as err:
        lite.connect(junk)
    assert (err.value.sqlstate, err.value.message, err.value.hint, err.value.transient) == (
        "08001", f"SQLite file {junk} is not a SQLite database (file is not a database)",
        "check the path: a SQLite 3 database file starts with 'SQLite format 3'", False)
    assert lite.classify(err.value) == (
        "08001", f"SQLite file {junk} is not a SQLite database (file is not a database)", False)


def test_the_connection_only_reads(conn: lite.SQLiteConnection, db: Path) -> None:
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    refused = [
        "INSERT INTO t VALUES (3, 'c')",
        "UPDATE t SET v = 'x'",
        "CREATE TABLE u (a)",
        "CREATE TEMP TABLE u (a)",
        f"ATTACH DATABASE '{db}' AS other",
        "PRAGMA journal_mode = WAL",
        "PRAGMA writable_schema = ON",
        "COMMIT",
        "BEGIN IMMEDIATE",
        "SAVEPOINT s",
    ]
    for statement in refused:
        with pytest.raises(sqlite3.DatabaseError) as err:
            conn.execute(statement)
        code, message, transient = lite.classify(err.value)
        assert (code, message, transient) == ("42501", "not authorized", False), statement
    with pytest.raises(sqlite3.OperationalError) as err:
        conn.execute("SELECT load_extension('/tmp/x.so')")
    assert lite.classify(err.value) == (
        "42501", "not authorized to use function: load_extension", False)
    error = lite.as_error(sqlite3.DatabaseError("not authorized"))
    assert error.message == "the SQLite source runs queries only: that statement is not authorized"
    # What the reader and the chunk planner need still runs.
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    assert conn.execute("SELECT name FROM pragma_table_info('t') ORDER BY cid").fetchall() == [
        ("id",), ("v",)]
    assert conn.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                        "WHERE x < 3) SELECT abs(random()) >= 0, x FROM n").fetchall() == [
        (1, 1), (1, 2), (1, 3)]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_a_callers_own_connection_gives_its_file(db: Path) -> None:
    with closing(sqlite3.connect(db)) as own:
        assert lite.path_of(own) == db
    with closing(sqlite3.connect(":memory:")) as memory, pytest.raises(DmsError) as err:
        lite.path_of(memory)
    assert err.value.message == ("the SQLite connection is an in-memory or temporary database, "
                                 "which no other connection can read")


def test_the_worker_cap_is_one_and_cannot_be_raised() -> None:
    assert lite.MAX_READERS == 1
    assert lite.worker_cap() == 1
    assert lite.worker_cap("1") == 1
    assert lite.worker_cap(1) == 1
    for value in ("4", 0, "two", True):
        with pytest.raises(DmsError) as err:
            lite.worker_cap(value)
        assert (err.value.sqlstate, err.value.message) == (
            "22023", f"MAPPER_MAX_WORKERS_SQLITE must be 1 (from 1 to 1), got {value!r}")
