"""Look at a chunk plan without running it: ``dms.plan_chunks()`` and ``dms plan``.

With a source connection the plan is measured (catalog, min/max, sample,
page count) exactly as a run would measure it.  Without one -- a dialect
whose database is not reachable from here, say Oracle -- the query is
still parsed, checked and rewritten, with the strategies that need no
statistics (``hash``, ``single``); the others say what they are missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dms_pkg.chunking.dialects import ParamStyle, get_dialect
from dms_pkg.chunking.plan import ChunkPlan, plan_query, validate_n_chunks, validate_strategy
from dms_pkg.chunking.planner import plan_chunks, validate_chunk_size
from dms_pkg.db.binds import PYFORMAT_BIND
from dms_pkg.db.sources import SourceConnection
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

# Strategies whose bounds come from the source's statistics.
_MEASURED = frozenset({"key_range", "quantile", "ctid", "rowid", "offset"})


@dataclass(frozen=True)
class PlanRow:
    """One row of ``dms.plan_chunks()``."""

    chunk_no: int
    strategy: str
    kind: str
    predicate_sql: str
    lo: str | None
    hi: str | None
    estimated_rows: int | None
    params: str  # JSON object of the bind values, in bind order
    driving_table: str | None
    chunk_key: str | None
    refused_reason: str | None
    notes: str | None
    query_sql: str


def readable_binds(text: str, style: ParamStyle) -> str:
    """Pyformat SQL (``%(lo)s``, doubled ``%``) written as ``:lo`` for people to read."""
    if style is not ParamStyle.PYFORMAT:
        return text
    return PYFORMAT_BIND.sub(lambda m: f":{m.group(1)}" if m.group(1) else "%", text)


def show_value(value: Any) -> str | None:
    """A bound as a user reads it; composite bounds as ``(a, b)``."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return "(" + ", ".join("NULL" if v is None else str(v) for v in value) + ")"
    return str(value)


def preview(
    source: SourceConnection | None,
    sql: str,
    *,
    dialect: str = "postgres",
    key: str | Sequence[str] | None = None,
    n_chunks: int | None = None,
    chunk_size: int | None = None,
    strategy: str = "auto",
) -> ChunkPlan:
    """The plan a run would use; measured on ``source`` when one is given."""
    chunk_dialect = get_dialect(dialect)
    validate_strategy(strategy)
    validate_n_chunks(n_chunks)
    validate_chunk_size(chunk_size)
    if source is not None:
        if get_dialect(source.dialect).NAME != chunk_dialect.NAME:
            raise DmsError(
                f"the source connection speaks {source.dialect}, but dialect "
                f"{chunk_dialect.NAME} was asked for",
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="leave the dialect out, or connect to a database of that dialect",
            )
        return plan_chunks(
            source, sql, key=key, n_chunks=n_chunks, chunk_size=chunk_size, strategy=strategy
        )
    if strategy in _MEASURED:
        raise DmsError(
            f'strategy "{strategy}" computes its bounds from the source database\'s '
            "statistics, and no connection to a "
            f"{chunk_dialect.NAME} source was given",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="plan against a connection (dms plan --dsn ..., or p_conid), or look at "
            "strategy hash, which needs no statistics",
        )
    return plan_query(sql, chunk_dialect.NAME, key, n_chunks, strategy)


def _json_params(params: dict[str, Any]) -> str:
    """The binds as a JSON object; NaN and infinities (which JSON lacks) as text."""
    def plain(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        return value

    return json.dumps({name: plain(v) for name, v in params.items()}, default=str)


def plan_rows(plan: ChunkPlan) -> list[PlanRow]:
    notes = "; ".join(plan.notes) or None
    return [
        PlanRow(
            chunk_no=c.chunk_no,
            strategy=c.strategy,
            kind=c.kind,
            predicate_sql=c.predicate_sql,
            lo=show_value(c.lo),
            hi=show_value(c.hi),
            estimated_rows=c.estimated_rows,
            params=_json_params(c.params),
            driving_table=plan.driving_table,
            chunk_key=plan.key,
            refused_reason=plan.refused_reason,
            notes=notes,
            query_sql=c.query_sql,
        )
        for c in plan.chunks
    ]
