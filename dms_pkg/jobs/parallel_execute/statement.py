"""What a chunk of a DBMS_PARALLEL_EXECUTE task runs: the task's ``sql_stmt``
with its ``:start_id`` and ``:end_id`` bound to the chunk's range.

Oracle binds the two placeholders through DBMS_SQL.  Here a statement gets
them as ``$1`` and ``$2`` (found by sqlglot's tokenizer, so a ``':start_id'``
inside a string literal or a ``::`` cast is left alone), and runs as a
prepared plan with the chunk's values.  A PL/pgSQL block (Oracle's
``BEGIN ... END;``) cannot take parameters, so it runs as ``DO`` with the
range written in as numeric literals -- numbers from the chunk table, never
text a caller chose.

ROWID ranges need one thing more.  An Oracle UPDATE leaves a row where it
is; a PostgreSQL UPDATE writes a new row version, which may land in a page
of a chunk that has not run yet, and that chunk would update the row a
second time.  So a ROWID statement's ``ctid`` comparisons are ANDed with
``age(xmin) > $3``: ``$3`` is how many transactions have started since the
task first ran, so a row version written since then (by the task's own
chunks) is left out, and every row the task started with is touched once.
That needs the statement parsed, so ROWID tasks take one SQL statement.
"""

from __future__ import annotations

import decimal
import itertools
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType  # type: ignore[attr-defined]

from dms_pkg.errors import DmsError

BINDS = ("start_id", "end_id")
ROWID_NAMES = ("rowid", "ctid")
SYNTAX_ERROR = "42601"
UNDEFINED_PARAMETER = "42P02"
FEATURE_NOT_SUPPORTED = "0A000"


@dataclass(frozen=True)
class ChunkStatement:
    """``sql`` is what a chunk runs: with $1/$2 (and $3 for ROWID ranges) when
    ``mode`` is "statement"; a DO block with {start_id}/{end_id} slots when "block"."""

    sql: str
    mode: str  # "statement" | "block"

    def render_block(self, start: object, end: object) -> str:
        """The DO block of one chunk: the range as numeric literals."""
        values = {"start_id": _number(start), "end_id": _number(end)}
        # DO $tag$<newline>body<newline>$tag$: the placeholders are in the body.
        head, tail = self.sql.index("\n") + 1, self.sql.rindex("\n")
        body = self.sql[head:tail]
        out, pos = [self.sql[:head]], 0
        for begin, stop, name in _binds(body, _tokens(body)):
            out += [body[pos:begin], values[name]]
            pos = stop
        out += [body[pos:], self.sql[tail:]]
        return "".join(out)


def prepare(sql_stmt: str, chunk_type: str) -> ChunkStatement:
    """The statement each chunk of a task chunked as ``chunk_type`` runs.

    Raises DmsError (nothing is run) when the statement does not use both
    placeholders, uses another one, or cannot be cut for ROWID ranges.
    """
    text = (sql_stmt or "").strip()
    if not text:
        raise DmsError("sql_stmt is empty", sqlstate=SYNTAX_ERROR,
                       hint="give the statement each chunk runs, with :start_id and :end_id")
    text = text.rstrip()
    tokens = _tokens(text)
    binds = _binds(text, tokens)
    _check_binds(binds)
    if _is_block(tokens):
        if chunk_type == "ROWID_RANGE":
            raise DmsError(
                "a ROWID_RANGE task runs one SQL statement per chunk, not a PL/pgSQL block",
                sqlstate=FEATURE_NOT_SUPPORTED,
                hint="write the block's work as one UPDATE/DELETE/INSERT ... WHERE rowid "
                     "BETWEEN :start_id AND :end_id, or chunk the table by a number column "
                     "(create_chunks_by_number_col), whose blocks run as given",
            )
        return ChunkStatement(_as_do_block(text), "block")
    body = text[:-1].rstrip() if text.endswith(";") else text
    if chunk_type == "ROWID_RANGE":
        return ChunkStatement(_rowid_statement(body), "statement")
    return ChunkStatement(_numbered(body, _binds(body, _tokens(body))), "statement")


def _tokens(text: str) -> list[Token]:
    """The statement's tokens.  sqlglot keeps what follows a command it does not
    parse (CALL, DO, ...) as one string: that part is tokenized on its own."""
    try:
        tokens = list(sqlglot.tokenize(text, read="postgres"))
        if tokens and tokens[0].token_type == TokenType.COMMAND:
            offset = tokens[0].end + 1
            rest = list(sqlglot.tokenize(text[offset:], read="postgres"))
            tokens = tokens[:1] + [
                Token(t.token_type, t.text, t.line, t.col, t.start + offset, t.end + offset)
                for t in rest]
        return tokens
    except TokenError as exc:
        raise DmsError(f"sql_stmt cannot be read: {exc}", sqlstate=SYNTAX_ERROR,
                       hint="check quotes and dollar-quoting in the statement") from None


def _binds(text: str, tokens: list[Token]) -> list[tuple[int, int, str]]:
    """(start, end, name) of every ``:name`` placeholder: a colon right before a name."""
    found = []
    for colon, name in itertools.pairwise(tokens):
        if colon.token_type != TokenType.COLON or name.start != colon.end + 1:
            continue
        if not name.text or not (name.text[0].isalpha() or name.text[0] == "_"):
            continue
        if text[name.start:name.end + 1] != name.text:  # a quoted name: not a placeholder
            continue
        found.append((colon.start, name.end + 1, name.text.lower()))
    return found


def _check_binds(binds: list[tuple[int, int, str]]) -> None:
    names = {name for _, _, name in binds}
    unknown = sorted(names - set(BINDS))
    if unknown:
        raise DmsError(
            f"sql_stmt uses the placeholder :{unknown[0]}; a chunk binds only :start_id and "
            ":end_id",
            sqlstate=UNDEFINED_PARAMETER,
            hint="use :start_id and :end_id for the chunk's range; other values go into the "
                 "statement itself",
        )
    missing = [name for name in BINDS if name not in names]
    if missing:
        raise DmsError(
            f"sql_stmt does not use :{missing[0]}: every chunk would run on the whole table",
            sqlstate=UNDEFINED_PARAMETER,
            hint="restrict the statement to the chunk, e.g. WHERE id BETWEEN :start_id AND "
                 ":end_id (or WHERE rowid BETWEEN :start_id AND :end_id for ROWID chunks)",
        )


def _is_block(tokens: list[Token]) -> bool:
    first = tokens[0] if tokens else None
    return first is not None and (first.text.upper() in ("BEGIN", "DECLARE")
                                  or first.text.startswith("<<"))


def _numbered(text: str, binds: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, name in binds:
        out += [text[pos:start], f"${BINDS.index(name) + 1}"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _as_do_block(text: str) -> str:
    """The block as a DO statement, its placeholders kept: each chunk writes its
    range in (``render_block``)."""
    tag = "dms_pe"
    while f"${tag}$" in text:
        tag += "_"
    return f"DO ${tag}$\n{text}\n${tag}$"


def _rowid_statement(text: str) -> str:
    try:
        tree = sqlglot.parse_one(text, read="postgres")
    except (ParseError, TokenError) as exc:
        raise DmsError(
            f"sql_stmt of a ROWID_RANGE task cannot be parsed: {str(exc).splitlines()[0]}",
            sqlstate=SYNTAX_ERROR,
            hint="ROWID chunks rewrite the statement to skip row versions the task wrote "
                 "itself; give one plain SQL statement, or chunk by a number column",
        ) from None
    cut = 0
    for node in list(tree.find_all(exp.Between, exp.GTE, exp.GT, exp.LTE, exp.LT, exp.EQ)):
        column = _rowid_column(node)  # type: ignore[arg-type]
        if column is None:
            continue
        column.set("this", exp.to_identifier("ctid"))
        fresh = exp.GT(
            this=exp.Anonymous(this="pg_catalog.age",
                               expressions=[exp.column("xmin", table=column.table or None)]),
            expression=exp.Var(this="$3"),
        )
        node.replace(exp.Paren(this=exp.And(this=node.copy(), expression=fresh)))
        cut += 1
    if not cut:
        raise DmsError(
            "sql_stmt of a ROWID_RANGE task does not compare ROWID (or ctid) with :start_id "
            "and :end_id",
            sqlstate=SYNTAX_ERROR,
            hint="write WHERE rowid BETWEEN :start_id AND :end_id",
        )
    if isinstance(tree, exp.Update):
        # Oracle allows the table's alias on a SET target (SET e.sal = ...);
        # PostgreSQL does not: the target is a column of the updated table anyway.
        for assignment in tree.expressions:
            target = assignment.this
            if isinstance(target, exp.Column) and target.table:
                target.set("table", None)
    for placeholder in list(tree.find_all(exp.Placeholder)):
        placeholder.replace(exp.Var(this=f"${BINDS.index(placeholder.name.lower()) + 1}"))
    return tree.sql(dialect="postgres")


def _rowid_column(node: exp.Expression) -> exp.Column | None:
    """The ROWID/ctid column of a comparison with :start_id or :end_id, if it is one."""
    if isinstance(node, exp.Between):
        sides = [node.this, node.args.get("low"), node.args.get("high")]
    else:
        sides = [node.this, node.expression]
    columns = [s for s in sides if isinstance(s, exp.Column)
               and s.name.lower() in ROWID_NAMES and not s.this.quoted]
    binds = [s for s in sides if isinstance(s, exp.Placeholder) and s.name.lower() in BINDS]
    return columns[0] if columns and binds else None


def _number(value: object) -> str:
    """A chunk bound as a numeric literal (it comes from a numeric column)."""
    try:
        text = format(decimal.Decimal(str(value)), "f")  # 1E-8 as 0.00000001
    except decimal.InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None
    if not text or not all(c.isdigit() or c in "-." for c in text):
        raise ValueError(f"not a number: {value!r}")
    return f"({text})"
