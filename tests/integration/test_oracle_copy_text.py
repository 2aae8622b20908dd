"""The Oracle backend's COPY text, loaded by the real PostgreSQL sandbox.

No Oracle server runs here, so the values are the Python objects
python-oracledb returns for each Oracle type (driver path), and the texts
the server path's TO_CHAR formats write (server path).  What is real: the
PostgreSQL tables built from ``map_type``, ``COPY ... FROM STDIN (FORMAT
text)``, and the values PostgreSQL reads back.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import Any

import oracledb
import psycopg
import pytest
from psycopg import sql

from dms_pkg.backends.oracle_copy import copy_layout
from dms_pkg.backends.oracle_types import OracleColumn as C
from tests.integration.conftest import Cluster, DatabaseFactory

UTC2 = dt.timezone(dt.timedelta(hours=2))

# (column, value as python-oracledb returns it, PostgreSQL's text of the loaded value)
EVERY_TYPE: list[tuple[C, Any, str]] = [
    (C("N_SMALL", "DB_TYPE_NUMBER", 4, 0), -9999, "-9999"),
    (C("N_INT", "DB_TYPE_NUMBER", 9, 0), 123456789, "123456789"),
    (C("N_BIG", "DB_TYPE_NUMBER", 18, 0), 999999999999999999, "999999999999999999"),
    (C("N_WIDE", "DB_TYPE_NUMBER", 38, 0), decimal.Decimal("9" * 38), "9" * 38),
    (C("N_MONEY", "DB_TYPE_NUMBER", 12, 2), decimal.Decimal("-1234567890.05"),
     "-1234567890.05"),
    (C("N_TINY", "DB_TYPE_NUMBER", 3, 5), decimal.Decimal("0.00123"), "0.00123"),
    (C("N_ROUNDED", "DB_TYPE_NUMBER", 5, -2), 1234500, "1234500"),
    (C("N_ANY", "DB_TYPE_NUMBER", 0, -127), decimal.Decimal("1.5E-30"),
     "0.0000000000000000000000000000015"),
    (C("N_INTEGER", "DB_TYPE_NUMBER"), decimal.Decimal("12345678901234567890"),
     "12345678901234567890"),
    (C("F_FLOAT", "DB_TYPE_BINARY_FLOAT"), 0.10000000149011612, "0.1"),
    (C("F_DOUBLE", "DB_TYPE_BINARY_DOUBLE"), 1e-300, "1e-300"),
    (C("F_NAN", "DB_TYPE_BINARY_DOUBLE"), float("nan"), "NaN"),
    (C("F_INF", "DB_TYPE_BINARY_DOUBLE"), float("-inf"), "-Infinity"),
    (C("S_VARCHAR", "DB_TYPE_VARCHAR", size=30), "back\\slash\ttab\nnew\rcr",
     "back\\slash\ttab\nnew\rcr"),
    (C("S_NVARCHAR", "DB_TYPE_NVARCHAR", size=12), "Grüße 東京 🚀", "Grüße 東京 🚀"),
    # char(n) pads as Oracle's CHAR does; its cast to text drops the padding.
    (C("S_CHAR", "DB_TYPE_CHAR", size=4), "ab  ", "ab"),
    (C("S_NCHAR", "DB_TYPE_NCHAR", size=2), "ü ", "ü"),
    (C("S_CLOB", "DB_TYPE_CLOB"), "x" * 70_000 + "\\end", "x" * 70_000 + "\\end"),
    (C("S_NCLOB", "DB_TYPE_NCLOB"), "", ""),
    (C("B_RAW", "DB_TYPE_RAW", size=4), b"\x00\n\xff\\", "\\x000aff5c"),
    (C("B_BLOB", "DB_TYPE_BLOB"), bytes(range(256)), "\\x" + bytes(range(256)).hex()),
    (C("D_DATE", "DB_TYPE_DATE"), dt.datetime(2024, 2, 29, 23, 59, 58), "2024-02-29 23:59:58"),
    (C("D_TS", "DB_TYPE_TIMESTAMP", 0, 6), dt.datetime(1, 1, 1, 0, 0, 0, 1),
     "0001-01-01 00:00:00.000001"),
    (C("D_TS3", "DB_TYPE_TIMESTAMP", 0, 3), dt.datetime(2020, 1, 2, 3, 4, 5, 678900),
     "2020-01-02 03:04:05.679"),
    (C("D_TSTZ", "DB_TYPE_TIMESTAMP_TZ", 0, 6),
     dt.datetime(2020, 6, 1, 12, 0, 0, 500000, UTC2), "2020-06-01 10:00:00.5+00"),
    (C("I_DS", "DB_TYPE_INTERVAL_DS", 2, 6),
     -dt.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000),
     "-1 days -02:03:04.5"),
    (C("I_YM", "DB_TYPE_INTERVAL_YM", 2), oracledb.IntervalYM(-1, -2), "-1 years -2 mons"),
    (C("R_ROWID", "DB_TYPE_ROWID"), "AAAR1AAEAAAAAIAAA", "AAAR1AAEAAAAAIAAA"),
    (C("R_UROWID", "DB_TYPE_UROWID"), "*BAMAAJ8CwQL+", "*BAMAAJ8CwQL+"),
    (C("T_BOOL", "DB_TYPE_BOOLEAN"), True, "true"),
]


@pytest.fixture(scope="module")
def pg(databases: DatabaseFactory, cluster: Cluster) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(cluster.dsn(databases.create()), autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET IntervalStyle = 'postgres'")
        conn.execute("SET DateStyle = 'ISO, YMD'")
        yield conn


def create_target(conn: psycopg.Connection[Any], name: str, columns: list[C]) -> None:
    """The target table from map_type's PostgreSQL types (our own type text)."""
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(
        sql.Identifier(name),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name.lower()),
                                                    sql.SQL(c.pg_type)) for c in columns)))


def copy_in(conn: psycopg.Connection[Any], name: str, text: str) -> None:
    with conn.cursor() as cur, cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT text)").format(
            sql.Identifier(name))) as copy:
        copy.write(text.encode("utf-8"))


def as_text(conn: psycopg.Connection[Any], name: str, columns: list[C]) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c.name.lower()))
                           for c in columns), sql.Identifier(name))
    return list(conn.execute(query).fetchall())


def test_every_type_through_the_driver_path_loads_as_the_value_it_was(
    pg: psycopg.Connection[Any]
) -> None:
    columns = [c for c, _, _ in EVERY_TYPE]
    create_target(pg, "every_type", columns)
    layout = copy_layout("SELECT * FROM t", columns, server=False)
    copy_in(pg, "every_type", layout.lines([
        tuple(v for _, v, _ in EVERY_TYPE),
        tuple(None for _ in EVERY_TYPE),
    ]))
    loaded = as_text(pg, "every_type", columns)
    assert len(loaded) == 2
    for column, (_, _, expected), got in zip(columns, EVERY_TYPE, loaded[0], strict=True):
        assert got == expected, column.name
    assert loaded[1] == tuple(None for _ in EVERY_TYPE)


def test_mixed_server_and_driver_parts_load_column_for_column(
    pg: psycopg.Connection[Any]
) -> None:
    columns = [C("ID", "DB_TYPE_NUMBER", 10, 0), C("NOTES", "DB_TYPE_CLOB"),
               C("AT", "DB_TYPE_DATE"), C("PIC", "DB_TYPE_BLOB")]
    layout = copy_layout("SELECT * FROM t", columns)
    assert [p.server for p in layout.parts] == [True, False, True, False]
    create_target(pg, "mixed", columns)
    # What the server parts return as text, what the driver returns as values.
    copy_in(pg, "mixed", layout.lines([("7", "a\tb", "2024-01-01 00:00:00", b"\x01\x02"),
                                       ("\\N", None, "\\N", None)]))
    assert as_text(pg, "mixed", columns) == [("7", "a\tb", "2024-01-01 00:00:00", "\\x0102"),
                                             (None, None, None, None)]


# Texts in the forms the server path's SQL writes (TO_CHAR 'TM9' numbers,
# nine fraction digits, UTC with +00, " BC", signed interval fields with
# whole microseconds); the PostgreSQL side of that contract.  ('TM9' writes
# -0.5 as '-.5': numeric reads it, interval input would not -- hence
# microseconds.)
SERVER_FORMS: list[tuple[C, str, str]] = [
    (C("N1", "DB_TYPE_NUMBER", 12, 2), ".5", "0.50"),
    (C("N2", "DB_TYPE_NUMBER", 0, -127), "-1.2345E-90",
     "-0." + "0" * 89 + "12345"),
    (C("N3", "DB_TYPE_NUMBER", 0, -127), "1E+100", "1" + "0" * 100),
    (C("D1", "DB_TYPE_DATE"), "0044-03-15 12:00:00 BC", "0044-03-15 12:00:00 BC"),
    (C("D2", "DB_TYPE_TIMESTAMP", 0, 6), "2020-01-02 03:04:05.123456789",
     "2020-01-02 03:04:05.123457"),
    (C("D3", "DB_TYPE_TIMESTAMP", 0, 0), "2020-01-02 03:04:05.500000000",
     "2020-01-02 03:04:06"),
    (C("D4", "DB_TYPE_TIMESTAMP_TZ", 0, 6), "2020-06-01 10:00:00.500000000+00",
     "2020-06-01 10:00:00.5+00"),
    (C("D5", "DB_TYPE_TIMESTAMP_LTZ", 0, 6), "0044-03-15 12:00:00.000000000+00 BC",
     "0044-03-15 12:00:00+00 BC"),
    (C("I1", "DB_TYPE_INTERVAL_DS", 2, 6), "-1 days -2 hours -3 mins -4500000 microseconds",
     "-1 days -02:03:04.5"),
    (C("I2", "DB_TYPE_INTERVAL_DS", 2, 6), "0 days 0 hours 0 mins -1 microseconds",
     "-00:00:00.000001"),
    (C("I4", "DB_TYPE_INTERVAL_DS", 9, 6), "123456789 days 0 hours 0 mins 0 microseconds",
     "123456789 days"),
    (C("I3", "DB_TYPE_INTERVAL_YM", 2), "-1 years -2 mons", "-1 years -2 mons"),
    (C("R1", "DB_TYPE_RAW", size=2), "\\\\x0AFF", "\\x0aff"),
    (C("T1", "DB_TYPE_BOOLEAN"), "t", "true"),
]


def test_the_server_paths_text_forms_load_as_meant(pg: psycopg.Connection[Any]) -> None:
    columns = [c for c, _, _ in SERVER_FORMS]
    create_target(pg, "server_forms", columns)
    copy_in(pg, "server_forms", "\t".join(t for _, t, _ in SERVER_FORMS) + "\n")
    assert as_text(pg, "server_forms", columns) == [tuple(e for _, _, e in SERVER_FORMS)]
