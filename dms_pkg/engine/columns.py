"""Source and target columns: matching, casts, and the statements that move a chunk.

Columns are matched **by name**: every column the source query returns must
have a column of the same name in the target (alias it in the query if the
names differ).  Matching by position would load a swapped pair of columns
without complaint; by name it cannot.  Target columns the source does not
provide get their defaults, and a NOT NULL one without a default is refused
before anything moves.

Types follow INSERT ... SELECT (assignment) rules.  Whether each source type
can be stored in its target column is checked before any chunk runs by an
``INSERT ... SELECT NULL::<source type> ... WHERE false`` on the target:
the server itself answers, with its own message naming the column.  Where
the types differ the source query casts the column to the target type, so
every path -- INSERT ... SELECT, binary COPY (which applies no casts at all),
text COPY -- loads the same values.

Identifiers are quoted by psycopg's ``sql`` module.  Type names come from the
server's ``format_type()``, which quotes them itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from dms_pkg.db.base import Session
from dms_pkg.db.faults import Fault, fault_of
from dms_pkg.errors import (
    DUPLICATE_OBJECT,
    INVALID_PARAMETER_VALUE,
    UNDEFINED_COLUMN,
    UNDEFINED_TABLE,
    DmsError,
)

DATATYPE_MISMATCH = "42804"
NOT_NULL_VIOLATION = "23502"
# Built-in types have OIDs below FirstNormalObjectId; only those have the same
# OID (and binary form) in every database, which binary COPY relies on.
FIRST_USER_OID = 16384
QUERY_ALIAS = "dms_q"


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type_oid: int
    type_name: str


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type_oid: int
    type_name: str
    not_null: bool
    has_default: bool
    generated: bool


@dataclass(frozen=True)
class ColumnMap:
    """How the source's columns land in the target's."""

    source: tuple[SourceColumn, ...]
    target: tuple[TargetColumn, ...]  # the target column of each source column

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.target]

    @property
    def casts(self) -> list[str | None]:
        """The target type to cast each source column to, or None when equal."""
        return [
            None if s.type_name == t.type_name else checked_cast(t.type_name)
            for s, t in zip(self.source, self.target, strict=True)
        ]

    @property
    def binary_safe(self) -> bool:
        """Binary COPY needs identical, built-in types on both ends."""
        return all(t.type_oid < FIRST_USER_OID for t in self.target)


_LENGTH_LIMITED = re.compile(r"^(character varying|character|bit varying|bit)\(\d+\)(\[\])?$")
_UNLIMITED = {"character varying": "character varying", "character": "pg_catalog.bpchar",
              "bit varying": "bit varying", "bit": "bit varying"}


def checked_cast(type_name: str) -> str:
    """The type to CAST a source column to on its way into ``type_name``.

    An explicit CAST to varchar(n) or char(n) silently cuts a longer value
    (PostgreSQL's rule for explicit casts); storing it into the column checks
    the length and refuses it.  So the cast goes to the type without its
    length and the target column does the checking: too long is an error
    (22001), never a quietly shortened value.
    """
    match = _LENGTH_LIMITED.match(type_name)
    if match is None:
        return type_name
    return _UNLIMITED[match.group(1)] + (match.group(2) or "")


def _q(composable: sql.Composable) -> str:
    return composable.as_string(None)


def describe_query(db: Session, query: str) -> list[SourceColumn]:
    """Names and types of the columns ``query`` returns, read from its database.

    The probe runs the parsed and rendered query (``source_query.runnable``),
    never the caller's text: a second statement in it, or a trailing ``;`` or
    ``--`` comment that would break the wrapping subquery, cannot reach the
    server.
    """
    # Imported here: the parser is for planning, and workers never load it.
    from dms_pkg.engine.source_query import runnable

    probe = f"SELECT * FROM ({runnable(query)}) AS {QUERY_ALIAS} LIMIT 0"
    described = db.describe(probe)
    if not described:
        return []
    rows = db.query(
        "SELECT pg_catalog.format_type(t.oid, t.mod) AS type_name"
        " FROM ROWS FROM (pg_catalog.unnest($1::bigint[]::oid[]),"
        " pg_catalog.unnest($2::bigint[]::int[])) WITH ORDINALITY AS t(oid, mod, n)"
        " ORDER BY t.n",
        [[oid for _, oid, _ in described], [mod for _, _, mod in described]],
    )
    return [
        SourceColumn(name, oid, row["type_name"])
        for (name, oid, _), row in zip(described, rows, strict=True)
    ]


def describe_table(db: Session, schema: str, table: str) -> list[TargetColumn] | None:
    """The table's columns, or None when it does not exist."""
    rows = db.query(
        "SELECT a.attname::text AS name, a.atttypid::bigint AS type_oid,"
        " pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name,"
        " a.attnotnull AS not_null, a.atthasdef OR a.attidentity <> '' AS has_default,"
        " a.attgenerated <> '' AS generated"
        " FROM pg_catalog.pg_attribute a"
        " WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [schema, table],
    )
    if not rows:
        exists = db.query(
            "SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))"
            " IS NOT NULL AS found",
            [schema, table],
        )
        return [] if exists and exists[0]["found"] else None
    return [
        TargetColumn(r["name"], int(r["type_oid"]), r["type_name"], bool(r["not_null"]),
                     bool(r["has_default"]), bool(r["generated"]))
        for r in rows
    ]


def table_name(schema: str, table: str) -> str:
    return _q(sql.Identifier(schema, table))


def match(source: list[SourceColumn], target: list[TargetColumn], target_name: str,
          managed: Sequence[str] = ()) -> ColumnMap:
    """Pair each source column with the target column of its name, or refuse.

    ``managed`` target columns are filled by the load itself (a merge's row
    hash or validity dates), so they need not come from the source.
    """
    if not source:
        raise DmsError("the source query returns no columns", sqlstate=INVALID_PARAMETER_VALUE)
    twice = [name for name, count in Counter(c.name for c in source).items() if count > 1]
    if twice:
        raise DmsError(
            f'the source query returns more than one column named "{twice[0]}"',
            sqlstate=DUPLICATE_OBJECT,
            hint="give each column its own name with AS; columns are matched to the "
            "target by name",
        )
    by_name = {c.name: c for c in target}
    missing = [c.name for c in source if c.name not in by_name]
    if missing:
        raise DmsError(
            f"source column{'s' if len(missing) > 1 else ''} "
            + ", ".join(f'"{m}"' for m in missing)
            + f" {'have' if len(missing) > 1 else 'has'} no column of that name in target "
            f"{target_name}",
            sqlstate=UNDEFINED_COLUMN,
            detail=f"the source returns {len(source)} columns, the target has {len(target)}: "
            + ", ".join(c.name for c in target),
            hint="columns are matched by name: alias the source column (AS target_name) or "
            "add the column to the target",
        )
    generated = [c.name for c in source if by_name[c.name].generated]
    if generated:
        raise DmsError(
            f'target column "{generated[0]}" of {target_name} is generated and cannot be '
            "loaded",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="leave the column out of the source query",
        )
    provided = {c.name for c in source} | set(managed)
    required = [
        c.name for c in target
        if c.not_null and not c.has_default and not c.generated and c.name not in provided
    ]
    if required:
        raise DmsError(
            f'target column "{required[0]}" of {target_name} is NOT NULL, has no default, '
            "and the source query does not provide it",
            sqlstate=NOT_NULL_VIOLATION,
            hint="select a value for it in the source query",
        )
    return ColumnMap(tuple(source), tuple(by_name[c.name] for c in source))


def check_assignable(target_db: Session, columns: ColumnMap, schema: str, table: str) -> None:
    """Ask the target whether each source type can be stored in its column.

    ``INSERT ... SELECT NULL::<type> ... WHERE false`` writes nothing but is
    checked by the server with the rules a real INSERT uses; it also proves
    the INSERT privilege.  Runs where the caller rolls back or commits nothing.
    """
    values = sql.SQL(", ").join(
        sql.SQL("NULL::{}").format(sql.SQL(s.type_name)) for s in columns.source
    )
    probe = sql.SQL("INSERT INTO {} ({}) SELECT {} WHERE false").format(
        sql.Identifier(schema, table),
        sql.SQL(", ").join(sql.Identifier(n) for n in columns.names),
        values,
    )
    try:
        target_db.execute(_q(probe))
    except Exception as exc:
        sqlstate, message = error_fields(exc)
        if sqlstate in (None, "42804", "42846", "42704", "22P02"):
            raise DmsError(
                f"the source columns do not fit the target {table_name(schema, table)}: {message}",
                sqlstate=DATATYPE_MISMATCH if sqlstate in (None, "42846") else sqlstate,
                detail="source column types: "
                + ", ".join(f"{s.name} {s.type_name}" for s in columns.source),
                hint="cast the column in the source query, or create the target with "
                "matching types",
            ) from None
        raise database_error(exc, f"cannot load target {table_name(schema, table)}",
                             "42501") from None


def error_fields(exc: BaseException) -> tuple[str | None, str]:
    """SQLSTATE and primary message of a psycopg or PL/Python database error."""
    fault = fault_of(exc)
    if fault is None:
        return None, str(exc.args[0]) if exc.args else str(exc)
    return fault.sqlstate, fault.message


def error_report(exc: BaseException) -> tuple[str | None, str]:
    """SQLSTATE and the database's message on one line with its DETAIL and HINT:
    what a chunk's last error keeps (a unique or check violation says which
    row only in its DETAIL)."""
    fault = fault_of(exc)
    if fault is None:
        return error_fields(exc)
    return fault.sqlstate, fault.one_line(with_sqlstate=False)


def database_error(exc: BaseException, what: str, default_sqlstate: str, *,
                   hint: str | None = None, detail: str | None = None) -> DmsError:
    """``exc`` (a database error) as a DmsError: ``what`` failed, then the
    database's own message, with its SQLSTATE (``default_sqlstate`` when it has
    none), its DETAIL and HINT first and ours after them.  Raise it ``from None``:
    the driver's traceback helps nobody."""
    fault = fault_of(exc) or Fault(None, str(exc))
    return DmsError(f"{what}: {fault.message}", sqlstate=fault.sqlstate or default_sqlstate,
                    hint=_both(fault.hint, hint), detail=_both(fault.detail, detail))


def _both(theirs: str | None, ours: str | None) -> str | None:
    return "; ".join(part for part in (theirs, ours) if part) or None


def create_table(
    target_db: Session, schema: str, table: str, source: list[SourceColumn]
) -> None:
    """Create the target with the source's column names and types."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type_name)) for c in source
    )
    statement = sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, table), columns)
    try:
        target_db.execute(_q(statement))
    except Exception as exc:
        raise database_error(
            exc, f"cannot create target {table_name(schema, table)}", "42000",
            hint="create the table yourself, or check the schema exists and you may "
            "create tables in it",
        ) from None


def require_table(columns: list[TargetColumn] | None, schema: str, table: str) -> list[
    TargetColumn
]:
    if columns is None:
        raise DmsError(
            f"target table {table_name(schema, table)} does not exist",
            sqlstate=UNDEFINED_TABLE,
            hint="create it first, or pass p_params => '{\"create_target\": true}' to create "
            "it from the source query's column types",
        )
    return columns


# -- the statements a worker runs -----------------------------------------------


def select_list(columns: ColumnMap, source_dbtyp: str = "POSTGRESQL") -> str | None:
    """``dms_q."a", CAST(dms_q."b" AS integer), ...`` over the chunk query; None when no
    column needs a cast (the chunk query then runs as it is: no extra projection).

    Only a PostgreSQL source runs these casts: every other source writes COPY
    text, which the target's column types read as their input."""
    if source_dbtyp != "POSTGRESQL" or not any(columns.casts):
        return None
    parts = []
    for source, cast in zip(columns.source, columns.casts, strict=True):
        column = sql.Identifier(QUERY_ALIAS, source.name)
        parts.append(
            sql.SQL("CAST({} AS {})").format(column, sql.SQL(cast)) if cast else column
        )
    return _q(sql.SQL(", ").join(parts))


def insert_columns(columns: ColumnMap, schema: str, table: str) -> str:
    return _q(
        sql.SQL("{} ({})").format(
            sql.Identifier(schema, table),
            sql.SQL(", ").join(sql.Identifier(n) for n in columns.names),
        )
    )
