"""Chunk bind values stored as JSON without losing their SQL type.

A chunk's bounds are Python values (int, Decimal, date, datetime, UUID, str,
tuples for composite keys are already flattened by the planner).  JSON has
no date or UUID, and a bound read back as the wrong type compares wrongly
(``uuid >= text`` does not even exist), so each value is stored as
``[type, text]`` and decoded back to the same Python type.  Nothing here is
ever pasted into SQL: the values are bound by the driver.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

Encoded = list[list[Any]]


def encode_value(value: Any) -> list[Any]:
    if value is None:
        return ["null", None]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, decimal.Decimal):
        return ["numeric", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, dt.datetime):
        return ["timestamptz" if value.tzinfo else "timestamp", value.isoformat()]
    if isinstance(value, dt.date):
        return ["date", value.isoformat()]
    if isinstance(value, dt.time):
        return ["time", value.isoformat()]
    if isinstance(value, uuid.UUID):
        return ["uuid", str(value)]
    if isinstance(value, bytes):
        return ["bytea", value.hex()]
    if isinstance(value, str):
        return ["text", value]
    raise TypeError(f"cannot store a chunk bound of type {type(value).__name__}: {value!r}")


def decode_value(item: Sequence[Any]) -> Any:
    kind, text = item[0], item[1]
    if kind == "null" or text is None:
        return None
    decoders: dict[str, Any] = {
        "bool": bool,
        "int": int,
        "numeric": decimal.Decimal,
        "float": float,
        "timestamptz": dt.datetime.fromisoformat,
        "timestamp": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "time": dt.time.fromisoformat,
        "uuid": uuid.UUID,
        "bytea": bytes.fromhex,
        "text": str,
    }
    if kind not in decoders:
        raise ValueError(f"unknown stored bind type {kind!r}")
    return decoders[kind](text)


def encode_params(params: Mapping[str, Any]) -> Encoded:
    """``[[name, type, text], ...]`` in bind order."""
    return [[name, *encode_value(value)] for name, value in params.items()]


def decode_params(encoded: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """The planner's ``params`` mapping back, in bind order."""
    return {item[0]: decode_value(item[1:]) for item in encoded}
