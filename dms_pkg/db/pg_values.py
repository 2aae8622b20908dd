"""PostgreSQL values that Python's types cannot hold, kept as their text.

psycopg loads ``date``, ``timestamp`` and ``timestamptz`` into ``datetime``
objects, which have no infinity and no year outside 1..9999: one
``'-infinity'`` fails the whole fetch with "timestamp too small".  A planner
that reads a key's min/max, or a chunk moved row by row, must carry such a
value through intact, so the loaders here return it as the text PostgreSQL
wrote (``'infinity'``, ``'-infinity'``, ``'0044-03-15 BC'``, ...) and load
every other value exactly as psycopg does.  The text binds back as an
untyped literal (psycopg sends ``str`` as ``unknown``), which the server reads
as the column's type again, and a text COPY writes it unchanged.

PL/Python hands these types to Python as text; ``from_text`` turns that text
into the values psycopg would have given, so a plan measured inside the
server sees the same Python types as one measured over a connection.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.abc import Loader as LoaderProtocol
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.pq import Format

# The types whose values can fall outside Python's range.
LENIENT_TYPES = ("date", "timestamp", "timestamptz")
# Types PL/Python passes as text that psycopg loads as Python objects.
_TEXT_TYPES = (*LENIENT_TYPES, "uuid")


def _oid(name: str) -> int:
    info = psycopg.adapters.types[name]
    assert info is not None
    return info.oid


def _text_loader(oid: int, context: Any) -> LoaderProtocol:
    """psycopg's own text-format loader for ``oid``."""
    cls = psycopg.adapters.get_loader(oid, Format.TEXT)
    assert cls is not None, oid
    return cls(oid, context)


class _Lenient(Loader):
    """psycopg's own text loader for the type; its text when that fails."""

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self._inner = _text_loader(oid, context)

    def load(self, data: Buffer) -> Any:
        try:
            return self._inner.load(data)
        except psycopg.DataError:  # infinity, BC, or a year past 9999
            return bytes(data).decode()


def keep_out_of_range_as_text(adapters: AdaptersMap) -> None:
    """Register the lenient loaders on a connection's or cursor's adapters (text format)."""
    for name in LENIENT_TYPES:
        adapters.register_loader(_oid(name), _Lenient)


_PARSERS: dict[int, LoaderProtocol] = {}


def from_text(oid: int, value: Any) -> Any:
    """A PL/Python value of type ``oid`` as psycopg would load it.

    ``value`` is the type's output text in DateStyle ISO; text that does not
    load (infinity, out of range) stays text, like ``_Lenient``.
    """
    if not isinstance(value, str):
        return value
    if not _PARSERS:
        for name in _TEXT_TYPES:
            oid_of = _oid(name)
            _PARSERS[oid_of] = _text_loader(oid_of, None)
    parser = _PARSERS.get(oid)
    if parser is None:
        return value
    try:
        return parser.load(value.encode())
    except (psycopg.DataError, ValueError):
        return value
