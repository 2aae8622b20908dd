"""A Python API transformation, called on one batch of a chunk and held to its contract.

The contract (the user guide's "Data Transformation"): the function gets a
list of dicts (column name -> value) and returns a list of dicts; the keys of
the first row returned in a chunk are the target columns it loads.  Whatever
breaks the contract fails the chunk with a message that says what the
function returned and how to fix it -- not a driver's ``TypeError`` from
deep inside the COPY -- and nothing of the chunk is kept.  The function's own
exceptions fail the chunk too, named as coming from it; they are not
retried (a transformation that failed once fails again on the same rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dms_pkg.errors import DmsError

Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
DATATYPE_MISMATCH = "42804"  # what the function returned is not what it must return
EXTERNAL_ROUTINE_EXCEPTION = "38000"  # the function itself raised
_HINT = ("return a list with one dict per row, keyed by target column name, for example "
         "[{**row, \"status\": \"PROCESSED\"} for row in rows]")


def apply(transform: Transform, batch: list[dict[str, Any]], chunk_no: int
          ) -> Sequence[Mapping[str, Any]]:
    """``transform(batch)``, checked to be a list of dicts with string keys."""
    try:
        rows: Any = transform(batch)
    except Exception as exc:
        raise DmsError(
            f"the transformation failed on chunk {chunk_no}: {type(exc).__name__}: {exc}",
            sqlstate=EXTERNAL_ROUTINE_EXCEPTION,
            hint="fix the transformation function; the chunk's rows were not loaded",
        ) from exc
    if not isinstance(rows, list | tuple):
        raise DmsError(
            f"the transformation must return a list of dicts, but on chunk {chunk_no} it "
            f"returned {_kind(rows)}",
            sqlstate=DATATYPE_MISMATCH, hint=_HINT)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise DmsError(
                f"the transformation must return a list of dicts, but on chunk {chunk_no} "
                f"row {number} of what it returned is {_kind(row)}",
                sqlstate=DATATYPE_MISMATCH, hint=_HINT)
    if rows and not all(isinstance(key, str) for key in rows[0]):
        bad = next(key for key in rows[0] if not isinstance(key, str))
        raise DmsError(
            f"the transformation returned a row with key {bad!r} ({_kind(bad)}) on chunk "
            f"{chunk_no}; the keys must be the target's column names",
            sqlstate=DATATYPE_MISMATCH, hint=_HINT)
    return rows


def check_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], chunk_no: int
                  ) -> None:
    """Every row has exactly the columns of the chunk's first row: a key that
    only some rows have would otherwise be dropped (or set NULL) silently."""
    expected = set(columns)
    for row in rows:
        if row.keys() != expected:
            extra = sorted(set(row) - expected)
            missing = sorted(expected - set(row))
            raise DmsError(
                f"the transformation returned rows with different keys on chunk {chunk_no}: "
                f"the first row has {', '.join(columns)}; another "
                + "; ".join(part for part in (
                    f"also has {', '.join(map(str, extra))}" if extra else "",
                    f"lacks {', '.join(missing)}" if missing else "") if part),
                sqlstate=DATATYPE_MISMATCH,
                hint="give every row the same keys (None for a NULL value)")


def _kind(value: Any) -> str:
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"
