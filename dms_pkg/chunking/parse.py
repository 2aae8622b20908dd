"""Parse source SQL and chunk keys into sqlglot trees, with user-facing errors.

Everything downstream edits the parsed tree (never the SQL text), so parsing
is the one place where a user's SQL can be rejected for its syntax.  sqlglot
reports the line and column of the first problem; we pass them on so the user
can find it.

Choices made here, as a production loader would:

* A source must be exactly one query (SELECT / WITH ... SELECT / set
  operation); one trailing ``;`` is fine.  DML, a data-modifying WITH, SELECT
  ... INTO or several statements are refused: a chunk runs the source many
  times, and only a query that reads can be re-run safely.
* Bind parameters in the source (``:p``, ``%s``, ``?``, ``$1``) are refused:
  the chunk runner supplies its own binds and has no values for the user's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from dms_pkg.chunking.dialects import ChunkDialect
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, INVALID_PARAMETER_VALUE, SYNTAX_ERROR, DmsError

# Planning a mapper job parses its SQL several times (checking the flow,
# analysing it, describing it); parsing costs ~20 times what copying a tree
# does, so each text is parsed once per session.  Callers edit their trees:
# each gets its own copy.
_PARSED: dict[tuple[str, type[ChunkDialect]], exp.Query] = {}
_PARSED_MAX = 64


def parse_query(sql: str, dialect: ChunkDialect) -> exp.Query:
    """Parse ``sql`` in ``dialect`` into one query tree or raise DmsError."""
    key = (sql, type(dialect))
    tree = _PARSED.get(key)
    if tree is None:
        tree = _parse_query(sql, dialect)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = tree
    return tree.copy()


def _parse_query(sql: str, dialect: ChunkDialect) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect.sqlglot) if s is not None]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        line, col = first.get("line"), first.get("col")
        where = f" at line {line}, column {col}" if line is not None else ""
        if first.get("highlight"):
            where += f' near "{first["highlight"]}"'
        description = _readable(first.get("description") or str(err))
        raise DmsError(
            f"cannot parse source SQL as {dialect.NAME}{where}: {description}",
            sqlstate=SYNTAX_ERROR,
            hint="check the SQL and that the dialect matches the source database",
        ) from err
    except TokenError as err:
        raise DmsError(
            f"cannot parse source SQL as {dialect.NAME}: {err}",
            sqlstate=SYNTAX_ERROR,
            hint="check the SQL and that the dialect matches the source database",
        ) from err
    if not statements:
        raise DmsError("source SQL is empty", sqlstate=SYNTAX_ERROR)
    if len(statements) > 1:
        raise DmsError(
            f"source SQL must be a single query, found {len(statements)} statements",
            sqlstate=SYNTAX_ERROR,
            hint="remove the extra statements or the trailing text after the query",
        )
    tree = statements[0]
    while isinstance(tree, exp.Subquery) and isinstance(tree.this, exp.Query):
        tree = tree.this  # "(SELECT ...)" as a whole statement
    if not isinstance(tree, exp.Query):
        raise DmsError(
            f"source SQL must be a query (SELECT), not {tree.key.upper()}",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="chunking re-runs the source once per chunk, so it must only read",
        )
    writes = _writes(tree)
    if writes is not None:
        raise DmsError(
            f"source SQL must only read, but it {writes}",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="chunking re-runs the source once per chunk (and again on a retry or "
            "resume), so it must be a plain query; the run writes the target itself",
        )
    bind = next((n for n in tree.walk() if _is_bind(n)), None)
    if bind is not None:
        raise DmsError(
            f"source SQL contains the bind parameter {bind.sql(dialect.sqlglot)}",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="write the value into the query; chunk queries bind only their own bounds",
        )
    return tree


def _writes(tree: exp.Query) -> str | None:
    """What in a parsed query writes, said for a message; None when it only reads."""
    if tree.args.get("into") is not None:
        return "creates a table (SELECT ... INTO)"
    for node in tree.walk():
        if isinstance(node, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            return f"runs {node.key.upper()} in its WITH clause"
    return None


def _is_bind(node: exp.Expr) -> bool:
    """A bind marker: ``:p``, ``%s``, ``?`` (Placeholder) or PostgreSQL's ``$1``."""
    if isinstance(node, exp.Placeholder):
        return True
    return (isinstance(node, exp.Parameter) and isinstance(node.this, exp.Literal)
            and not node.this.is_string)


# sqlglot describes some errors with its own class and token reprs; say them in SQL words.
_MISSING_PART = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]+\.(\w+)'>")
_TOKEN = re.compile(r"<Token token_type: [\w.]+, text: ([^,]*), line: \d+.*?>")


def _readable(description: str) -> str:
    description = _MISSING_PART.sub(lambda m: f"{m.group(1).upper()} is incomplete", description)
    return _TOKEN.sub(lambda m: f'"{m.group(1)}"', description)


def parse_key(key: str | Sequence[str], dialect: ChunkDialect) -> list[exp.Column]:
    """Parse a chunk key into columns.

    ``key`` is one column reference in the source dialect (``id``,
    ``o.id``, ``"MyId"``, ```my id```), a parenthesised or comma-separated
    list of them for a composite key, or a sequence of such strings.
    """
    texts = [key] if isinstance(key, str) else list(key)
    if not texts:
        raise _bad_key(str(key))
    columns: list[exp.Column] = []
    for text in texts:
        columns.extend(_parse_key_text(text, dialect))
    return columns


def _parse_key_text(text: str, dialect: ChunkDialect) -> list[exp.Column]:
    if not text.strip():
        raise _bad_key(text)
    try:
        parsed = sqlglot.parse_one(text, read=dialect.sqlglot)
    except (ParseError, TokenError):
        try:  # "a, b" parses as a row value once parenthesised
            parsed = sqlglot.parse_one(f"({text})", read=dialect.sqlglot)
        except (ParseError, TokenError) as err:
            raise _bad_key(text) from err
    if isinstance(parsed, exp.Paren):
        parsed = parsed.this
    parts = parsed.expressions if isinstance(parsed, exp.Tuple) else [parsed]
    if not parts or not all(isinstance(p, exp.Column) and not p.args.get("db") for p in parts):
        raise _bad_key(text)
    return [p for p in parts if isinstance(p, exp.Column)]


def _bad_key(text: str) -> DmsError:
    return DmsError(
        f'invalid chunk key "{text}": expected a column name, optionally qualified '
        "by a table alias, or a list of them",
        sqlstate=INVALID_PARAMETER_VALUE,
        hint="for example key => 'id', 'o.order_id' or 'region, order_id'",
    )
