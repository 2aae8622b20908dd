"""Real SQLite files for the backend's tests, written with the stdlib sqlite3 module.

``EDGE_DDL`` declares one column per affinity and per declared type the
backend maps, ``EDGE_ROWS`` fills them with edge values (NULL beside '',
escapes, unicode, 64-bit limits, infinities, blobs with NUL bytes, an
untyped column holding every storage class).  ``expected`` is an
independent reading of what PostgreSQL must hold for a SQLite value: it
shares no code with the backend, so that a test comparing the two can fail.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

EDGE_DDL = """
CREATE TABLE edge (
    id INTEGER PRIMARY KEY,
    i INTEGER, big BIGINT, ubig "UNSIGNED BIG INT", r REAL, f FLOAT, dp "DOUBLE PRECISION",
    tx TEXT, vc VARCHAR(20), vch "VARYING CHARACTER(10)", cl CLOB,
    bl BLOB, n NUMERIC, dc DECIMAL(12,3), mo money,
    bo BOOLEAN, d DATE, dtm DATETIME, ts TIMESTAMP, tz TIMESTAMPTZ, js JSON,
    u
)"""

# Column -> the PostgreSQL type describe() must give it.
EDGE_TYPES = {
    "id": "bigint", "i": "bigint", "big": "bigint", "ubig": "bigint", "r": "double precision",
    "f": "double precision", "dp": "double precision", "tx": "text", "vc": "text",
    "vch": "text", "cl": "text", "bl": "bytea", "n": "numeric", "dc": "numeric(12,3)",
    "mo": "numeric", "bo": "boolean", "d": "date", "dtm": "timestamp without time zone",
    "ts": "timestamp without time zone", "tz": "timestamp with time zone", "js": "text",
    "u": "text",
}

MAX64 = 2**63 - 1
MIN64 = -(2**63)

EDGE_ROWS: list[tuple[Any, ...]] = [
    # id, i, big, ubig, r, f, dp, tx, vc, vch, cl, bl, n, dc, mo, bo, d, dtm, ts, tz, js, u
    (1, 42, 7, 9, 1.5, 0.1, 1e-300, "plain", "v", "w", "c", b"\x01\x02", 3.25, 1.5, 10,
     1, "2024-01-02", "2024-01-02 03:04:05", "2024-01-02T03:04:05.123456",
     "2024-01-02 03:04:05", '{"a": 1}', 17),
    (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None,
     None, None, None, None, None, None, None),
    (3, 0, 0, 0, 0.0, 0.0, 0.0, "", "", "", "", b"", 0, 0, 0, 0, "1970-01-01",
     "1970-01-01 00:00:00", "1970-01-01 00:00", "1970-01-01 00:00:00Z", "", ""),
    (4, MAX64, MAX64, MAX64, float("inf"), 1.7976931348623157e308, 5e-324,
     "tab\there\nnew\\line\rcr", "üñí ☃", "😀 emoji", "\\N is not null",
     b"\x00\\\x00\xff", "12345678901234567890.5", "123456789.125", 2.5,
     1, "9999-12-31", "2024-02-29 23:59:59.999", "2000-01-01 12:00:00",
     "2024-06-30 22:15:00+02:00", '["x", "\\t"]', 1.5),
    (5, MIN64, MIN64, MIN64, float("-inf"), -2.5, -1e308, "\\", "\t", "\n", "\\.",
     b"\\x41", -1, "-0.0005", -7, 0, "0001-01-01", "0001-01-01 00:00:00",
     "2038-01-19 03:14:08", "2024-01-01 00:00:00-05:30", "null", b"\x00blob\xff"),
    (6, -1, 1, 2, -0.0, 3.0, 2.0**53 + 1, "NULL", "N", "\\N", "'quoted'", "text in a blob",
     "1e3", 0.0005, "3.75", 1, "2024-01-31", "2024-01-31 00:00:00.5", "2024-01-31 23:00",
     "2024-01-31T23:00:00.25+01:00", "{}", -0.0),
    (7, 1, 2, 3, 1e16, 123456.0, 1e-5, "x" * 1000, "a\\tb", "\r\n", "\x7f", 12,
     None, None, None, 1, None, None, None, None, None, "text, not a number"),
    (8, 2, 3, 4, 2.5, 1 / 3, -1 / 3, "trailing space ", " leading", "é", "ß", 3.5,
     0.1, None, None, 0, None, None, None, None, None, MAX64),
]


def make_db(path: Path, ddl: str, rows: Iterable[Sequence[Any]] = (), *, table: str = "edge",
            journal: str = "delete") -> Path:
    """A SQLite file at ``path`` in the given journal mode, with ``ddl`` run and
    ``rows`` inserted into ``table``."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.executescript(ddl)
        rows = list(rows)
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.commit()
    finally:
        conn.close()
    return path


def read_all(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` as sqlite3 reads them (the source side of a comparison)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _text_of(value: Any) -> str:
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    return str(value)


def expected(pg_type: str, value: Any) -> Any:
    """The Python value psycopg must read back from ``pg_type`` for a SQLite value."""
    if value is None:
        return None
    base = pg_type.split("(")[0]
    if base == "bigint":
        return int(value)
    if base == "double precision":
        return float(value)
    if base == "numeric":
        number = decimal.Decimal(repr(value) if isinstance(value, float) else str(value))
        if "(" in pg_type:
            scale = int(pg_type.split(",")[1].rstrip(")"))
            number = number.quantize(decimal.Decimal(1).scaleb(-scale),
                                     rounding=decimal.ROUND_HALF_UP)
        return number
    if base == "boolean":
        return bool(value)
    if base == "date":
        return dt.date.fromisoformat(value)
    if base == "timestamp without time zone":
        return dt.datetime.fromisoformat(value)
    if base == "timestamp with time zone":
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if base == "bytea":
        return value if isinstance(value, bytes) else _text_of(value).encode()
    return _text_of(value)


def normalised(value: Any) -> Any:
    """A value in a form that compares equal across both sides, floats by their bits
    (so that -0.0 is not 0.0), timestamps with a zone in UTC."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value).hex())
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    if isinstance(value, decimal.Decimal):
        return ("numeric", value.normalize() if value.is_finite() else value)
    return value


def checksum(rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
    """(count, order-independent checksum) of rows of normalised values."""
    count = total = 0
    for row in rows:
        digest = hashlib.md5(repr(tuple(normalised(v) for v in row)).encode()).digest()
        total = (total + int.from_bytes(digest[:8], "big")) % 2**64
        count += 1
    return count, total


def multiset(rows: Iterable[Sequence[Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(normalised(v) for v in row) for row in rows)
