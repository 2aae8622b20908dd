"""The MariaDB backend's pure parts: type mapping, rendering, binds, logins, errors.

What reaches a real server (the stream, the lock, every type's value) is
tested in tests/integration/test_mysql_runs.py.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from dms_pkg.backends.base import Chunk, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.backends.mysql import _Reader
from dms_pkg.backends.mysql_connect import option_file, params_from_row, params_from_url, redact
from dms_pkg.backends.mysql_errors import MySQLError, from_client, from_pymysql
from dms_pkg.backends.mysql_reader import ZeroDateCheck, bind, literal
from dms_pkg.backends.mysql_types import column, field_type, render_select
from dms_pkg.engine.retry import is_outage
from dms_pkg.errors import DmsError


@pytest.mark.parametrize(("declared", "pg"), [
    ("tinyint(1)", "boolean"), ("bool", "boolean"), ("tinyint(4)", "smallint"),
    ("tinyint(3) unsigned", "smallint"), ("smallint(5) unsigned", "integer"),
    ("mediumint(8) unsigned", "integer"), ("int(11)", "integer"),
    ("int(10) unsigned", "bigint"), ("bigint(20)", "bigint"),
    ("bigint(20) unsigned", "numeric(20,0)"), ("decimal(12,2)", "numeric(12,2)"),
    ("decimal(65,30) unsigned", "numeric(65,30)"), ("float", "real"),
    ("double", "double precision"), ("date", "date"), ("datetime", "timestamp"),
    ("datetime(6)", "timestamp(6)"), ("timestamp", "timestamptz"),
    ("timestamp(3)", "timestamptz(3)"), ("time", "time"), ("year(4)", "smallint"),
    ("char(3)", "char(3)"), ("varchar(40)", "varchar(40)"), ("longtext", "text"),
    ("enum('a','b')", "text"), ("set('x','y')", "text"), ("json", "jsonb"),
    ("bit(5)", "bit(5)"), ("varbinary(16)", "bytea"), ("mediumblob", "bytea"),
    ("binary(3)", "bytea"),
])
def test_declared_types_map_to_postgresql_types(declared: str, pg: str) -> None:
    assert column("c", declared).pg_type == pg


def test_a_spatial_column_is_refused_by_name() -> None:
    with pytest.raises(DmsError) as err:
        column("spot", "point")
    assert err.value.message == ("column spot has the MariaDB/MySQL type point, which has no "
                                 "PostgreSQL type dms_pkg maps it to")
    assert err.value.sqlstate == "0A000"


@pytest.mark.parametrize(("code", "length", "decimals", "flags", "charset", "declared"), [
    (8, 21, 0, 32, 63, "bigint unsigned"), (246, 14, 2, 0, 63, "decimal(12,2)"),
    (253, 40, 0, 0, 45, "text"), (253, 16, 0, 128, 63, "varbinary(255)"),
    (12, 26, 6, 0, 63, "datetime(6)"), (1, 1, 0, 0, 63, "tinyint(1)"),
    (252, 0, 0, 0, 45, "longtext"),
])
def test_expression_columns_get_a_type_from_their_metadata(
        code: int, length: int, decimals: int, flags: int, charset: int, declared: str) -> None:
    assert field_type(code, length, decimals, flags, charset) == declared


def test_rows_are_rendered_as_copy_text_with_literals_free_of_quotes() -> None:
    sql = render_select([column("n", "varchar(9)"), column("b", "blob"),
                         column("ok", "tinyint(1)"), column("at", "timestamp")],
                        "SELECT n, b, ok, at FROM t")
    assert sql.startswith("SELECT CONCAT_WS(_utf8mb4 X'09', IFNULL(REPLACE(REPLACE(REPLACE("
                          "REPLACE(dms_q.`n`, _utf8mb4 X'5C', _utf8mb4 X'5C5C'),")
    assert "CONCAT(_utf8mb4 X'5C5C78', HEX(dms_q.`b`))" in sql
    assert "CONCAT(dms_q.`at`, _utf8mb4 X'2B3030')" in sql
    assert sql.endswith("FROM (SELECT n, b, ok, at FROM t) AS dms_q")
    assert "'\\" not in sql  # no backslash in a quoted literal: any sql_mode reads it alike


@pytest.mark.parametrize(("value", "text"), [
    (None, "NULL"), (True, "1"), (42, "42"), (Decimal("1.50"), "1.50"), (0.1, "0.1"),
    ("it's \\", "_utf8mb4 X'69742773205C'"), (b"\x00\xff", "X'00FF'"),
    (dt.date(2024, 2, 29), "'2024-02-29'"),
    (dt.datetime(2024, 2, 29, 1, 2, 3, 4), "'2024-02-29 01:02:03.000004'"),
    (dt.timedelta(hours=-838, minutes=-59), "'-838:59:00'"),
])
def test_binds_are_literals(value: Any, text: str) -> None:
    assert literal(value) == text


def test_bind_keeps_a_literal_percent() -> None:
    assert bind("SELECT '100%%' AS p FROM t WHERE id >= %(lo)s", {"lo": 5}) == (
        "SELECT '100%' AS p FROM t WHERE id >= 5")
    assert bind("SELECT '100%%' AS p", {}) == "SELECT '100%' AS p"


def test_a_zero_date_is_found_in_its_column_across_blocks() -> None:
    columns = [column("id", "int"), column("note", "text"), column("made", "date")]
    check = ZeroDateCheck(columns)
    check.check(b"1\t0000-00-00\t2024-01-01\n2\tx\t0000-")  # a text column may hold it
    with pytest.raises(DmsError) as err:
        check.check(b"00-00\n")
    assert err.value.message.startswith("column made holds the MariaDB zero date 0000-00-00")
    assert err.value.sqlstate == "22008"


def test_connection_rows_become_driver_arguments_without_a_password() -> None:
    row = {"conid": 4, "connm": "shop", "dbtyp": "MARIADB", "dbhost": "db1", "dbport": 3307,
           "dbsrvnm": "shop", "usrnm": "etl", "constr": "ssl_ca=/etc/ca.pem",
           "pwdsrc": "ENV", "pwdref": "SHOP_PW"}
    assert params_from_row(row, "alice") == {"ssl_ca": "/etc/ca.pem", "host": "db1",
                                             "port": 3307, "database": "shop", "user": "etl"}
    assert params_from_row({**row, "usrnm": None, "constr": None}, "alice")["user"] == "alice"
    with pytest.raises(DmsError) as err:
        params_from_row({**row, "pwdsrc": "PGPASS"}, None)
    assert "PGPASS, which is a libpq password file" in err.value.message
    with pytest.raises(DmsError) as err:
        params_from_row({**row, "constr": "sslmode=require"}, None)
    assert "'sslmode', which is no MariaDB connection option" in err.value.message


def test_urls_redaction_and_the_option_file() -> None:
    url = "mysql://etl:p%40ss@db1:3307/shop?unix_socket=/run/m.sock"
    assert params_from_url(url) == {"host": "db1", "port": 3307, "user": "etl",
                                    "password": "p@ss", "database": "shop",
                                    "unix_socket": "/run/m.sock"}
    assert redact(url) == "mysql://etl:********@db1:3307/shop?unix_socket=/run/m.sock"
    assert redact("host=db1 password=x y") == "host=db1 password=******** y"
    text = option_file({"host": "db1", "port": 3307, "user": "etl"}, 'a"b\\c').decode()
    assert text.splitlines() == ["[client]", 'host="db1"', 'port="3307"', 'user="etl"',
                                 "protocol=TCP", "connect-timeout=10", 'password="a\\"b\\\\c"']


def test_client_errors_keep_their_number_and_retry_verdict() -> None:
    lost = from_client("ERROR 2013 (HY000) at line 3: Lost connection to server during query\n",
                       1)
    assert (lost.errno, lost.pg_sqlstate, lost.transient) == (2013, "08006", True)
    column_error = from_client("--------------\nSELECT x\n--------------\n\nERROR 1054 (42S22) "
                               "at line 1: Unknown column 'x' in 'SELECT'\n", 1)
    assert (column_error.pg_sqlstate, column_error.transient, column_error.message) == (
        "42703", False, "Unknown column 'x' in 'SELECT'")
    fault = backend_for("MYSQL").classify(MySQLError(1045, "Access denied for user 'a'"))
    assert fault is not None and (fault.sqlstate, fault.transient) == ("28P01", False)


@pytest.mark.parametrize(("line", "errno"), [
    # what the mariadb client prints while the server stops, is down, and starts
    ("ERROR 2013 (HY000) at line 2: Lost connection to server during query", 2013),
    ("ERROR 2006 (HY000) at line 2: Server has gone away", 2006),
    ("ERROR 1053 (08S01) at line 2: Server shutdown in progress", 1053),
    ("ERROR 1927 (70100) at line 2: Connection was killed", 1927),
    ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)", 2002),
    ("ERROR 2003 (HY000): Can't connect to MySQL server on '127.0.0.1:3306' (111)", 2003),
])
def test_a_restarting_server_is_a_transient_outage(line: str, errno: int) -> None:
    """Each error a restart causes is retried, and waited out as an outage
    (engine.retry.is_outage) rather than counted against max_retries alone."""
    error = from_client(line + "\n", 1)
    assert (error.errno, error.transient, is_outage(error.pg_sqlstate)) == (errno, True, True)
    fault = backend_for("MARIADB").classify(error)
    assert fault is not None and fault.transient and is_outage(fault.sqlstate)


def test_pymysql_connection_errors_are_outages_and_a_refused_login_is_not() -> None:
    import pymysql

    refused = from_pymysql(pymysql.err.OperationalError(
        2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)"))
    assert refused is not None and refused.transient and is_outage(refused.pg_sqlstate)
    closed = from_pymysql(pymysql.err.InterfaceError(0, ""))
    assert closed is not None and closed.transient and is_outage(closed.pg_sqlstate)
    login = MySQLError(1045, "Access denied for user 'a'")
    assert not login.transient and not is_outage(login.pg_sqlstate)


def test_a_reader_whose_source_cannot_be_reached_opens_a_new_session_next_time() -> None:
    """A refused connection (nothing listens on port 1) on any of a reader's links
    may mean the server restarted: a client session opened before it is stale, so
    the reader is given up and the next chunk gets a new one."""
    endpoint = Endpoint(None, "MariaDB/MySQL source nowhere", "MYSQL", params={"connect": {
        "host": "127.0.0.1", "port": 1, "user": "nobody", "connect_timeout": 2}})
    reader = _Reader(endpoint, {})
    assert reader.usable()
    with pytest.raises(DmsError) as err, reader.copy(Chunk("SELECT 1", {})):
        pass
    assert err.value.sqlstate == "08001"
    assert not reader.usable()
    reader.reset()
    assert reader.usable()
