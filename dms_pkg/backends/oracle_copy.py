"""PostgreSQL COPY text from an Oracle chunk query.

Two paths, chosen per column (``copy_layout``):

* **server** -- Oracle renders the value as COPY text in SQL: numbers with
  ``TO_CHAR(x, 'TM9', 'NLS_NUMERIC_CHARACTERS=''.,''')`` (no exponent below
  64 characters, no locale separator), dates and timestamps with
  ``TO_CHAR`` in ISO order with nine fraction digits (PostgreSQL rounds to
  its microseconds), time zones as UTC (``SYS_EXTRACT_UTC`` + ``+00``),
  years before 1 AD as ``... BC``, intervals as signed PostgreSQL fields
  (``-1 days -2 hours -3 mins -4500000 microseconds``), RAW as ``\\\\x`` || RAWTOHEX,
  text escaped with REPLACE (backslash, tab, newline, carriage return), NULL
  as ``\\N``.  Consecutive server columns are joined with tabs into one
  VARCHAR2 column, so a row of such columns arrives as one ready line.
* **driver** -- python-oracledb fetches the value (LOBs as str/bytes, in
  arrays of ``arraysize`` rows) and Python formats it
  (``format_value``): CLOB/NCLOB/BLOB, national-character text (converting
  it to the database character set in SQL could lose characters),
  BINARY_FLOAT/BINARY_DOUBLE (Python's repr is the shortest exact
  decimal), UROWID, and text or RAW columns too wide for the budget below.

Why the budget: a SQL expression of type VARCHAR2 holds at most 4000 bytes
(32767 with MAX_STRING_SIZE = EXTENDED; pass ``max_string_bytes``), and
concatenating past it fails the query with ORA-01489.  Escaping can double a
text value, so a column goes through the server only when its *worst case*
fits, and a joined group of columns only when the sum of theirs does.
CLOBs longer than that limit are the reason CLOBs always stream through the
driver instead.

Oracle has no empty string: '' is NULL there, so an empty VARCHAR2 arrives
as ``\\N``; an empty CLOB (EMPTY_CLOB()) is not NULL and arrives as an empty
value.  PostgreSQL text cannot hold the NUL character: the driver path
refuses a value with CHR(0) naming its column; on the server path
PostgreSQL's COPY refuses it (invalid byte sequence 0x00).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from dms_pkg.backends.oracle_sql import column_ref, parse_query, render, wrap
from dms_pkg.backends.oracle_types import (
    BINARY_TYPES,
    CHAR_TYPES,
    CLOB_TYPES,
    NATIONAL_TYPES,
    TEXT_TYPES,
    TZ_TYPES,
    OracleColumn,
    check_columns,
)
from dms_pkg.errors import DmsError

NULL = "\\N"
STANDARD_MAX_STRING_BYTES = 4000  # MAX_STRING_SIZE = STANDARD (the default)
EXTENDED_MAX_STRING_BYTES = 32767
DEFAULT_ARRAYSIZE = 10_000
LOB_ARRAYSIZE = 500  # rows per fetch when LOBs arrive as whole values
_NUMBER_NLS = "NLS_NUMERIC_CHARACTERS='.,'"
_TIMESTAMP_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF9"
_DATE_FORMAT = "YYYY-MM-DD HH24:MI:SS"

# Most bytes the server's rendering of one non-NULL value takes.
_NUMBER_BYTES = 64  # TO_CHAR 'TM9' switches to scientific notation beyond 64 characters
_WORST_BYTES = {
    "DB_TYPE_NUMBER": _NUMBER_BYTES,
    "DB_TYPE_BINARY_INTEGER": _NUMBER_BYTES,
    "DB_TYPE_DATE": len("0000-00-00 00:00:00 BC"),
    "DB_TYPE_TIMESTAMP": len("0000-00-00 00:00:00.000000000 BC"),
    "DB_TYPE_TIMESTAMP_TZ": len("0000-00-00 00:00:00.000000000+00 BC"),
    "DB_TYPE_TIMESTAMP_LTZ": len("0000-00-00 00:00:00.000000000+00 BC"),
    "DB_TYPE_INTERVAL_DS": 4 * 24 + len(" days  hours  mins  microseconds"),
    "DB_TYPE_INTERVAL_YM": 2 * 24 + len(" years  mons"),
    "DB_TYPE_ROWID": 18,
    "DB_TYPE_BOOLEAN": 1,
}
# Always formatted by the driver (see the module docstring).
_DRIVER_TYPES = (CLOB_TYPES | NATIONAL_TYPES
                 | {"DB_TYPE_BLOB", "DB_TYPE_BINARY_FLOAT", "DB_TYPE_BINARY_DOUBLE",
                    "DB_TYPE_UROWID"})
_LOB_TYPES = CLOB_TYPES | {"DB_TYPE_BLOB"}


# -- the server path: SQL expressions ----------------------------------------

def _fn(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _s(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def _concat(*parts: exp.Expr) -> exp.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part)
    return result


def _number_text(value: exp.Expr) -> exp.Expr:
    return _fn("TO_CHAR", value, _s("TM9"), _s(_NUMBER_NLS))


def _bc(value: exp.Expr) -> exp.Expr:
    """`` BC`` for years before 1 AD (Oracle's TO_CHAR 'YYYY' drops the sign)."""
    year = exp.Extract(this=exp.var("YEAR"), expression=value.copy())
    return exp.Case(ifs=[exp.If(this=exp.LT(this=year, expression=exp.Literal.number(0)),
                                true=_s(" BC"))])


def _escaped(value: exp.Expr) -> exp.Expr:
    """Backslash first, then tab, newline and carriage return, as COPY text wants."""
    text = _fn("REPLACE", value, _s("\\"), _s("\\\\"))
    for code, escape in ((9, "\\t"), (10, "\\n"), (13, "\\r")):
        text = _fn("REPLACE", text, _fn("CHR", exp.Literal.number(code)), _s(escape))
    return text


def _interval_ds(value: exp.Expr) -> exp.Expr:
    # Every field signed on its own: PostgreSQL reads '-1 02:03:04' as
    # -1 day +2 hours unless IntervalStyle is sql_standard.  Seconds go as
    # whole microseconds (PostgreSQL's precision): 'TM9' writes -0.5 as
    # '-.5', which PostgreSQL's interval input refuses.
    parts: list[exp.Expr] = []
    for unit, word in (("DAY", " days "), ("HOUR", " hours "), ("MINUTE", " mins ")):
        field = exp.Extract(this=exp.var(unit), expression=value.copy())
        parts += [_number_text(field), _s(word)]
    seconds = exp.Extract(this=exp.var("SECOND"), expression=value.copy())
    micros = _fn("ROUND", exp.Mul(this=seconds, expression=exp.Literal.number(1_000_000)))
    parts += [_number_text(micros), _s(" microseconds")]
    return _concat(*parts)


def _interval_ym(value: exp.Expr) -> exp.Expr:
    years = exp.Extract(this=exp.var("YEAR"), expression=value.copy())
    months = exp.Extract(this=exp.var("MONTH"), expression=value.copy())
    return _concat(_number_text(years), _s(" years "), _number_text(months), _s(" mons"))


def server_text(column: OracleColumn, value: exp.Expr) -> exp.Expr | None:
    """Oracle SQL rendering ``value`` (a non-NULL value of ``column``) as COPY
    text, or None when the column takes the driver path."""
    kind = column.type_name
    if kind in _DRIVER_TYPES:
        return None
    if kind in ("DB_TYPE_NUMBER", "DB_TYPE_BINARY_INTEGER"):
        return _number_text(value)
    if kind in TEXT_TYPES or kind in CHAR_TYPES:
        return _escaped(value)
    if kind == "DB_TYPE_RAW":
        return _concat(_s("\\\\x"), _fn("RAWTOHEX", value))
    if kind == "DB_TYPE_DATE":
        return _concat(_fn("TO_CHAR", value, _s(_DATE_FORMAT)), _bc(value))
    if kind == "DB_TYPE_TIMESTAMP":
        return _concat(_fn("TO_CHAR", value, _s(_TIMESTAMP_FORMAT)), _bc(value))
    if kind in TZ_TYPES:
        utc = _fn("SYS_EXTRACT_UTC", value)
        return _concat(_fn("TO_CHAR", utc, _s(_TIMESTAMP_FORMAT)), _s("+00"), _bc(utc))
    if kind == "DB_TYPE_INTERVAL_DS":
        return _interval_ds(value)
    if kind == "DB_TYPE_INTERVAL_YM":
        return _interval_ym(value)
    if kind == "DB_TYPE_ROWID":
        return _fn("ROWIDTOCHAR", value)
    if kind == "DB_TYPE_BOOLEAN":
        return exp.Case(ifs=[exp.If(this=value.copy(), true=_s("t"))], default=_s("f"))
    return None


def worst_bytes(column: OracleColumn) -> int | None:
    """Most bytes the server's COPY text of one value of ``column`` takes,
    or None when it is unbounded or unknown (then: the driver path)."""
    kind = column.type_name
    if kind in _WORST_BYTES:
        return max(len(NULL), _WORST_BYTES[kind])
    if kind in TEXT_TYPES or kind in CHAR_TYPES:
        # Every character may be one that escaping doubles.
        return 2 * column.byte_size if column.byte_size else None
    if kind == "DB_TYPE_RAW":
        size = column.byte_size or column.size
        return 3 + 2 * size if size else None
    return None


def _with_null(value: exp.Column, text: exp.Expr) -> exp.Expr:
    return exp.Case(ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()),
                                true=_s(NULL))], default=text)


# -- the driver path: Python values ------------------------------------------

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape_text(text: str, column: str = "?") -> str:
    """COPY text of a string; NUL, which PostgreSQL text cannot hold, is refused."""
    if "\x00" in text:
        raise DmsError(
            f"column {column} holds a NUL character (CHR(0)), which PostgreSQL text cannot "
            "store",
            sqlstate="22021",
            hint=f"select REPLACE({column}, CHR(0)) (or another replacement) in the source "
            "query",
        )
    return text.translate(_ESCAPES)


def format_number(value: Any) -> str:
    """int, Decimal or float as PostgreSQL reads it, never in a locale's format."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a NUMBER value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
        return format(value, "f")
    if isinstance(value, float):
        return format_float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def format_float(value: float) -> str:
    """The shortest decimal that reads back as the same float (``repr``), and
    PostgreSQL's spellings of NaN and the infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(float(value))


def format_timestamp(value: dt.datetime | dt.date) -> str:
    """ISO 8601 with microseconds when there are any (DATE, TIMESTAMP)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise TypeError("a TIMESTAMP value without time zone came with one")
        return value.isoformat(sep=" ")
    return value.isoformat() + " 00:00:00"


def format_timestamptz(value: dt.datetime, column: str = "?") -> str:
    """ISO 8601 with the value's UTC offset; a value without one is refused
    rather than guessed (the server path renders time zones itself)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise DmsError(
            f"column {column}: the driver returned a time-zone value without its zone",
            sqlstate="22007",
            hint="let the server render it (the default for TIMESTAMP WITH TIME ZONE)",
        )
    return value.isoformat(sep=" ")


def format_interval_ds(value: dt.timedelta) -> str:
    """A day-to-second interval with every field signed alike, as the server
    path writes it (``-1 days -02:03:04.500000``)."""
    total = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
    sign = "-" if total < 0 else ""
    days, rest = divmod(abs(total), 86_400_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    return f"{sign}{days} days {sign}{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}"


def format_interval_ym(value: Any) -> str:
    """``oracledb.IntervalYM(years, months)``: both fields carry the sign."""
    return f"{int(value.years)} years {int(value.months)} mons"


def format_bytes(value: bytes | bytearray | memoryview) -> str:
    """bytea's hex form, COPY-escaped: ``\\\\x0aff``."""
    return "\\\\x" + bytes(value).hex()


def format_boolean(value: Any) -> str:
    return "t" if value else "f"


Formatter = Callable[[Any], str]


def driver_formatter(column: OracleColumn) -> Formatter:
    """The Python formatter for non-NULL values of ``column`` as python-oracledb
    returns them (with ``fetch_lobs=False, fetch_decimals=True``)."""
    kind, name = column.type_name, column.name
    if kind in ("DB_TYPE_NUMBER", "DB_TYPE_BINARY_INTEGER"):
        return format_number
    if kind in ("DB_TYPE_BINARY_FLOAT", "DB_TYPE_BINARY_DOUBLE"):
        return format_float
    if kind in TEXT_TYPES or kind in CHAR_TYPES or kind in CLOB_TYPES or kind in (
            "DB_TYPE_ROWID", "DB_TYPE_UROWID"):
        return lambda value: escape_text(str(value), name)
    if kind in BINARY_TYPES:
        return format_bytes
    if kind in ("DB_TYPE_DATE", "DB_TYPE_TIMESTAMP"):
        return format_timestamp
    if kind in TZ_TYPES:
        return lambda value: format_timestamptz(value, name)
    if kind == "DB_TYPE_INTERVAL_DS":
        return format_interval_ds
    if kind == "DB_TYPE_INTERVAL_YM":
        return format_interval_ym
    if kind == "DB_TYPE_BOOLEAN":
        return format_boolean
    column.data_type()  # raises the refusal that names the column
    raise AssertionError(f"no formatter for {kind}")  # pragma: no cover


def format_value(column: OracleColumn, value: Any) -> str:
    """One value of ``column`` as COPY text (NULL as ``\\N``)."""
    return NULL if value is None else driver_formatter(column)(value)


# -- layout: which column takes which path -----------------------------------

@dataclass(frozen=True)
class CopyPart:
    """One column of the copy query: columns the server joined into one text,
    or one raw value the driver formats."""

    columns: tuple[int, ...]  # indexes into CopyLayout.columns
    server: bool


@dataclass(frozen=True)
class CopyLayout:
    """The copy query of a chunk and how to turn its rows into COPY text."""

    sql: str
    columns: tuple[OracleColumn, ...]
    parts: tuple[CopyPart, ...]

    @property
    def single_line(self) -> bool:
        """Every column rendered by the server: each row is one ready line."""
        return len(self.parts) == 1 and self.parts[0].server

    @property
    def has_lobs(self) -> bool:
        return any(not p.server and self.columns[p.columns[0]].type_name in _LOB_TYPES
                   for p in self.parts)

    def path(self, name: str) -> str:
        """``server`` or ``driver``: the path of the column named ``name``."""
        for part in self.parts:
            for index in part.columns:
                if self.columns[index].name == name:
                    return "server" if part.server else "driver"
        raise KeyError(name)

    def formatters(self) -> list[Formatter | None]:
        """Per output column: None for a server text, else the driver formatter."""
        return [None if p.server else driver_formatter(self.columns[p.columns[0]])
                for p in self.parts]

    def lines(self, rows: Iterable[Sequence[Any]]) -> str:
        """The COPY text of fetched rows, each line ending in a newline."""
        if self.single_line:
            text = "\n".join([row[0] for row in rows])
            return text + "\n" if text else ""
        formatters = self.formatters()
        out = []
        for row in rows:
            out.append("\t".join([
                value if fmt is None else (NULL if value is None else fmt(value))
                for value, fmt in zip(row, formatters, strict=True)
            ]))
        return "\n".join(out) + "\n" if out else ""

    def arraysize(self, wanted: int = DEFAULT_ARRAYSIZE) -> int:
        """Rows per fetch: LOBs arrive whole, so fewer rows per array bound memory."""
        return min(wanted, LOB_ARRAYSIZE) if self.has_lobs else wanted


def copy_layout(
    query_sql: str,
    columns: Sequence[OracleColumn],
    *,
    max_string_bytes: int = STANDARD_MAX_STRING_BYTES,
    server: bool = True,
) -> CopyLayout:
    """The copy query for ``query_sql`` (a chunk query, binds kept) whose
    result columns are ``columns`` (from ``oracle_types.describe``).

    ``server=False`` sends every column through the driver (a row path that
    transforms values in Python wants them raw).
    """
    check_columns(columns)
    if not columns:
        raise DmsError("the source query returns no columns", sqlstate="42601",
                       hint="select at least one column")
    query = parse_query(query_sql)
    projections: list[exp.Expr] = []
    parts: list[CopyPart] = []
    group: list[int] = []
    group_bytes = 0
    group_texts: list[exp.Expr] = []

    def close_group() -> None:
        nonlocal group, group_bytes, group_texts
        if group:
            joined = group_texts[0]
            for text in group_texts[1:]:
                joined = _concat(joined, _fn("CHR", exp.Literal.number(9)), text)
            projections.append(exp.alias_(joined, f"dms_p{len(projections) + 1}"))
            parts.append(CopyPart(tuple(group), True))
        group, group_bytes, group_texts = [], 0, []

    for index, column in enumerate(columns):
        ref = column_ref(column.name)
        text = server_text(column, ref) if server else None
        worst = worst_bytes(column) if text is not None else None
        if text is None or worst is None or worst > max_string_bytes:
            close_group()
            projections.append(exp.alias_(ref, f"dms_p{len(projections) + 1}"))
            parts.append(CopyPart((index,), False))
            continue
        needed = worst + (1 if group else 0)  # the tab before it
        if group and group_bytes + needed > max_string_bytes:
            close_group()
            needed = worst
        group.append(index)
        group_bytes += needed
        group_texts.append(_with_null(ref, text))
    close_group()
    return CopyLayout(render(wrap(query, projections)), tuple(columns), tuple(parts))


def copy_text_query(query_sql: str, columns: Sequence[OracleColumn], *,
                    max_string_bytes: int = STANDARD_MAX_STRING_BYTES) -> str:
    """The Oracle SELECT of ``copy_layout``: one column (the row as COPY text)
    when every column fits the server path, else one per part."""
    return copy_layout(query_sql, columns, max_string_bytes=max_string_bytes).sql


def read_copy_text(cursor: Any, layout: CopyLayout, params: dict[str, Any] | None = None, *,
                   arraysize: int = DEFAULT_ARRAYSIZE) -> Iterator[bytes]:
    """Run the copy query on an oracledb cursor and yield COPY text (UTF-8)
    one fetched array at a time: memory holds one array, never the chunk."""
    size = layout.arraysize(arraysize)
    cursor.arraysize = size
    cursor.prefetchrows = size + 1  # the first round trip brings a full array
    cursor.execute(layout.sql, params or {}, fetch_lobs=False, fetch_decimals=True)
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield layout.lines(rows).encode("utf-8")
