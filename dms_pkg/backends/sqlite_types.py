"""SQLite declared types as PostgreSQL types, and SQLite values as COPY text.

``pg_type`` decides a column's PostgreSQL type from its declared type only
(never from the values: every chunk of a run must agree on it).
``formatters`` renders each value for that type, the way SQLite itself
would convert it where it can (a blob's bytes for text, the text's bytes
for a blob, 0/1 for a boolean), and refuses -- naming the column, the value
and the fix -- what PostgreSQL would otherwise load wrongly or reject
without naming the column: text in an integer column, a date that is not
ISO 8601, a UTC offset a ``timestamp`` would drop, a NUL in text.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from dms_pkg.engine.columns import SourceColumn
from dms_pkg.errors import DmsError

DIALECT = "sqlite"
INVALID_TEXT = "22P02"
OUT_OF_RANGE = "22003"

# --------------------------------------------------------------- types

# sqlglot reads the declared type; these PostgreSQL types (format_type()'s
# spelling) stand for the sqlglot types SQLite users declare.  A name sqlglot
# cannot read falls back to SQLite's own affinity rules (_affinity_type).
_T = exp.DType
_BY_SQLGLOT: dict[exp.DType, str] = {
    **dict.fromkeys(exp.DataType.INTEGER_TYPES, "bigint"),
    **dict.fromkeys((_T.FLOAT, _T.DOUBLE, _T.UDOUBLE), "double precision"),
    **dict.fromkeys((_T.DECIMAL, _T.DECIMAL32, _T.DECIMAL64, _T.DECIMAL128, _T.DECIMAL256,
                     _T.BIGDECIMAL, _T.UDECIMAL, _T.DECFLOAT, _T.MONEY, _T.SMALLMONEY),
                    "numeric"),
    _T.BOOLEAN: "boolean",
    _T.DATE: "date",
    _T.DATE32: "date",
    **dict.fromkeys((_T.DATETIME, _T.DATETIME2, _T.DATETIME64, _T.SMALLDATETIME, _T.TIMESTAMP,
                     _T.TIMESTAMP_S, _T.TIMESTAMP_MS, _T.TIMESTAMP_NS, _T.TIMESTAMPNTZ),
                    "timestamp without time zone"),
    **dict.fromkeys((_T.TIMESTAMPTZ, _T.TIMESTAMPLTZ), "timestamp with time zone"),
    **dict.fromkeys((_T.VARBINARY, _T.BINARY, _T.BLOB, _T.LONGBLOB, _T.MEDIUMBLOB,
                     _T.TINYBLOB, _T.IMAGE), "bytea"),
}
_NUMERIC_NAMES = frozenset({"numeric"})
_MAX_NUMERIC_PRECISION = 1000  # PostgreSQL's limit for numeric(p, s)


def pg_type(declared: str | None) -> str:
    """The PostgreSQL type (as format_type() spells it) for a SQLite declared type.

    No declared type (an untyped column, an expression) is ``text``: such a
    column may hold integers, reals, text and blobs side by side, and text
    holds every one of them.  A type sqlglot knows maps by the table above
    (every integer type to ``bigint``: SQLite stores 64-bit integers whatever
    width was declared; ``DECIMAL(p,s)`` to ``numeric(p,s)``); one it knows
    but PostgreSQL has no faithful counterpart for here (JSON, UUID, TIME,
    ...) is ``text``; a name it cannot read follows SQLite's affinity rules.
    """
    text = (declared or "").strip()
    if not text:
        return "text"
    try:
        parsed = exp.DataType.build(text, dialect=DIALECT)
    except (sqlglot.errors.ParseError, ValueError):
        return _affinity_type(text)
    if parsed.this == _T.USERDEFINED:
        return _affinity_type(text)
    pg = _BY_SQLGLOT.get(parsed.this, "text")
    if pg == "numeric":
        return _numeric(parsed)
    return pg


def _numeric(parsed: exp.DataType) -> str:
    params = [p.this for p in parsed.expressions if isinstance(p, exp.DataTypeParam)]
    try:
        digits = [int(p.name) for p in params if isinstance(p, exp.Literal)]
    except ValueError:
        return "numeric"
    if len(digits) != len(params) or not digits:
        return "numeric"
    if not 1 <= digits[0] <= _MAX_NUMERIC_PRECISION:
        return "numeric"
    if len(digits) == 1:
        return f"numeric({digits[0]},0)"
    if len(digits) == 2 and -1000 <= digits[1] <= 1000:
        return f"numeric({digits[0]},{digits[1]})"
    return "numeric"


def _affinity_type(declared: str) -> str:
    """SQLite's column affinity rules (datatype3.html §3.1), in their order."""
    name = declared.upper()
    if "INT" in name:
        return "bigint"
    if "CHAR" in name or "CLOB" in name or "TEXT" in name:
        return "text"
    if "BLOB" in name:
        return "bytea"
    if "REAL" in name or "FLOA" in name or "DOUB" in name:
        return "double precision"
    return "numeric"



# --------------------------------------------------------------- values as COPY text

NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INT64 = (-(2**63), 2**63)
_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?)\s*(Z|[+-]\d{2}(?::?\d{2})?)?")
_BOOLEAN_TEXT = {"t": "t", "true": "t", "y": "t", "yes": "t", "on": "t", "1": "t",
                 "f": "f", "false": "f", "n": "f", "no": "f", "off": "f", "0": "f"}

Formatter = Callable[[Any], str]


def float_text(value: float) -> str:
    """A double as PostgreSQL reads it back exactly (shortest round-trip digits)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _blob_text(value: bytes) -> str:
    # bytea's hex form \x..., its backslash escaped for COPY.
    return "\\\\x" + value.hex()


def _plain_text(value: Any) -> str:
    """What a value of any storage class reads as in a text column."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _preview(value: Any) -> str:
    if isinstance(value, bytes):
        return f"a blob of {len(value)} bytes"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f"the text {shown!r}"
    if isinstance(value, float):
        return f"the real {float_text(value)}"
    return f"the integer {value}"


class _Column:
    """Builds the formatter of one column and words its refusals."""

    def __init__(self, name: str, pg: str) -> None:
        self.name = name
        self.pg = pg
        self.quoted = exp.to_identifier(name, quoted=True).sql(DIALECT)

    def unfit(self, value: Any, why: str = "", *, hint: str | None = None,
              sqlstate: str = INVALID_TEXT) -> DmsError:
        return DmsError(
            f"SQLite column {self.quoted} is loaded as {self.pg}, but a row holds "
            f"{_preview(value)}{why}",
            sqlstate=sqlstate,
            hint=hint or f"load it as text with CAST({self.quoted} AS TEXT) in the source "
            "query, or correct the value in the SQLite file")

    def formatter(self) -> Formatter:
        kind = self.pg.split("(")[0]
        if kind in ("bigint", "integer", "smallint"):
            return self._integer()
        if kind in ("double precision", "real"):
            return self._float()
        if kind in _NUMERIC_NAMES:
            return self._numeric()
        if kind == "boolean":
            return self._boolean()
        if kind == "date":
            return self._date()
        if kind in ("timestamp without time zone", "timestamp"):
            return self._timestamp(zoned=False)
        if kind in ("timestamp with time zone", "timestamptz"):
            return self._timestamp(zoned=True)
        if kind == "bytea":
            return self._bytea()
        return self._text()

    def _integer(self) -> Formatter:
        def fmt(value: Any) -> str:
            kind = type(value)
            if kind is int:
                return str(value)
            if kind is float and value.is_integer():
                if _INT64[0] <= value < _INT64[1]:
                    return str(int(value))
                raise self.unfit(value, ", beyond the range of a 64-bit integer",
                                 sqlstate=OUT_OF_RANGE)
            if kind is str and _INTEGER_TEXT.fullmatch(value):
                return str(int(value))
            raise self.unfit(value)
        return fmt

    def _float(self) -> Formatter:
        def fmt(value: Any) -> str:
            kind = type(value)
            if kind is float:
                return float_text(value)
            if kind is int:
                return str(value)
            if kind is str:
                try:
                    return float_text(float(value))
                except ValueError:
                    pass
            raise self.unfit(value)
        return fmt

    def _numeric(self) -> Formatter:
        def fmt(value: Any) -> str:
            kind = type(value)
            if kind is int:
                return str(value)
            if kind is float:
                return float_text(value)
            if kind is str:
                try:
                    return str(decimal.Decimal(value.strip()))
                except decimal.InvalidOperation:
                    pass
            raise self.unfit(value)
        return fmt

    def _boolean(self) -> Formatter:
        def fmt(value: Any) -> str:
            kind = type(value)
            if kind is int or kind is float:
                # As SQLite's own truth test, and PostgreSQL's int-to-boolean cast.
                return "t" if value else "f"
            if kind is str and value.strip().lower() in _BOOLEAN_TEXT:
                return _BOOLEAN_TEXT[value.strip().lower()]
            raise self.unfit(value, hint=f"store 0 and 1 (or 'true' and 'false'), or load it "
                             f"as text with CAST({self.quoted} AS TEXT)")
        return fmt

    def _dates_hint(self, fn: str) -> str:
        return (f"SQLite keeps dates as ISO 8601 text; convert the others in the source query, "
                f"for example {fn}({self.quoted}, 'unixepoch') for Unix times or "
                f"{fn}({self.quoted}) for Julian day numbers")

    def _date(self) -> Formatter:
        def fmt(value: Any) -> str:
            if type(value) is str and _ISO_DATE.fullmatch(value):
                return value
            if type(value) is str and _ISO_TIMESTAMP.fullmatch(value):
                raise self.unfit(value, ", a date with a time of day", hint=(
                    f"drop the time in the source query: date({self.quoted}), or declare the "
                    "column DATETIME"))
            raise self.unfit(value, ", which is not an ISO 8601 date (YYYY-MM-DD)",
                             hint=self._dates_hint("date"))
        return fmt

    def _timestamp(self, *, zoned: bool) -> Formatter:
        def fmt(value: Any) -> str:
            found = _ISO_TIMESTAMP.fullmatch(value) if type(value) is str else None
            if found is None:
                raise self.unfit(value, ", which is not an ISO 8601 date and time",
                                 hint=self._dates_hint("datetime"))
            moment, offset = found.group(1), found.group(2)
            if zoned:
                # SQLite's date and time functions read a time without an offset as UTC.
                return moment + (offset or "+00")
            if offset is not None:
                raise self.unfit(value, ", a time with a UTC offset that a timestamp without "
                                 "time zone would silently drop", hint=(
                                     f"convert it to UTC in the source query: "
                                     f"datetime({self.quoted}), or declare the column "
                                     "TIMESTAMPTZ"))
            return moment
        return fmt

    def _bytea(self) -> Formatter:
        def fmt(value: Any) -> str:
            if type(value) is bytes:
                return _blob_text(value)
            # As SQLite's CAST(x AS BLOB): the bytes of the value's text.
            return _blob_text(_plain_text(value).encode())
        return fmt

    def _text(self) -> Formatter:
        def fmt(value: Any) -> str:
            if type(value) is str:
                if "\x00" in value:
                    raise self.unfit(value, ", with a NUL character that PostgreSQL text "
                                     "cannot store", hint=(
                                         f"load it as bytea: CAST({self.quoted} AS BLOB), or "
                                         f"drop the NULs: replace({self.quoted}, char(0), '')"))
                if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
                    # translate() costs five times these scans; most text needs none.
                    return value.translate(_COPY_ESCAPES)
                return value
            if type(value) is bytes:
                return _blob_text(value)
            return _plain_text(value)
        return fmt


def formatters(columns: Sequence[SourceColumn]) -> list[Formatter]:
    """One COPY text formatter per column (NULL is handled by the caller)."""
    return [_Column(c.name, c.type_name).formatter() for c in columns]


def copy_lines(rows: Sequence[Sequence[Any]], fmts: Sequence[Formatter]) -> str:
    """Rows as COPY text lines, each ended by a newline.

    Column by column: one formatter over a column's values, then the rows
    joined back, costs about half as much as formatting row by row.
    """
    if not rows:
        return ""
    text = [[NULL if v is None else f(v) for v in values]
            for f, values in zip(fmts, zip(*rows, strict=True), strict=True)]
    return "\n".join(map("\t".join, zip(*text, strict=True))) + "\n"
