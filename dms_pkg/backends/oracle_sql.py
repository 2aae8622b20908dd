"""sqlglot helpers every Oracle statement builder shares: parse one query,
wrap it in an outer SELECT, and write it back as Oracle SQL with its binds.

Queries are edited as parsed trees, never as text (STYLE §8).  A chunk
query arrives with its bounds as ``:name`` binds (chunking renders the
oracle dialect in python-oracledb's named style); they come back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from dms_pkg.chunking.dialects import ParamStyle, get_dialect
from dms_pkg.chunking.render import render as render_binds
from dms_pkg.errors import SYNTAX_ERROR, DmsError

DIALECT = "oracle"
ALIAS = "dms_q"


def parse_query(query_sql: str) -> exp.Query:
    """One Oracle query (SELECT, WITH ... SELECT, or a set operation)."""
    text = query_sql.strip().rstrip(";").strip()
    try:
        statements = [s for s in sqlglot.parse(text, read=get_dialect(DIALECT).sqlglot)
                      if s is not None]
    except ParseError as exc:
        raise DmsError(
            "the Oracle source query cannot be parsed: " + str(exc).splitlines()[0],
            sqlstate=SYNTAX_ERROR,
            hint="check the query's syntax; it must be a single SELECT",
        ) from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise DmsError(
            "the Oracle source SQL must be a single query (SELECT)",
            sqlstate=SYNTAX_ERROR,
            hint="pass one SELECT statement, without a trailing second statement",
        )
    return statements[0]


def wrap(query: exp.Query, projections: Sequence[exp.Expr], alias: str = ALIAS) -> exp.Select:
    """``SELECT <projections> FROM (<query>) <alias>``, the query's WITH clause
    moved to the outer SELECT so that every Oracle version accepts it."""
    inner = query.copy()
    with_ = inner.args.get("with_")
    if with_ is not None:
        inner.set("with_", None)
    outer = exp.select(*projections).from_(exp.Subquery(this=inner, alias=exp.TableAlias(
        this=exp.to_identifier(alias))))
    if with_ is not None:
        outer.set("with_", with_)
    return outer


def render(tree: exp.Expr) -> str:
    """Oracle SQL for ``tree``, every ``:name`` bind kept as it was."""
    names = sorted({node.name for node in tree.find_all(exp.Placeholder) if node.name})
    return render_binds(tree, get_dialect(DIALECT), names, ParamStyle.NAMED)


def column_ref(name: str, table: str = ALIAS) -> exp.Column:
    """``dms_q."NAME"``: a described column name, quoted as Oracle stored it."""
    return exp.column(exp.to_identifier(name, quoted=True), table=exp.to_identifier(table))
