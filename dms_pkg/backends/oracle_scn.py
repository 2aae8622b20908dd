"""One point in time for every worker: the SCN, and chunk queries read AS OF it.

The database's current SCN is read once (``current_scn``): by planning,
before the extent list, when the run is cut in ROWID ranges (that SCN is
then the run's point: see ``oracle_rowid``), else by the coordinator;
every chunk query is rewritten so that each table it reads is read
``AS OF SCN :dms_scn`` (``as_of_scn``).  Workers then see the tables exactly
as they were at that SCN, whatever commits meanwhile -- Oracle's answer to
PostgreSQL's exported snapshot.

Reading the SCN: ``SELECT CURRENT_SCN FROM V$DATABASE`` needs SELECT on
V_$DATABASE (SELECT_CATALOG_ROLE has it); when it is not granted,
``DBMS_FLASHBACK.GET_SYSTEM_CHANGE_NUMBER`` needs EXECUTE on DBMS_FLASHBACK.
Either is enough.

What AS OF needs and how it ends:

* the FLASHBACK object privilege (or FLASHBACK ANY TABLE) on tables of other
  schemas -- without it Oracle answers ORA-01031;
* undo for the run's duration: when the SCN's undo is overwritten the read
  fails with ORA-01555 (snapshot too old) -- not transient, the run must say
  that its consistent read is lost (``OracleFault.snapshot_lost``; the
  reader raises the runtime's ``SnapshotGone``); DDL on a table since the
  SCN gives ORA-01466, likewise.

The rewrite edits the parsed tree: every ``exp.Table`` that names a table,
view or synonym gets an ``exp.Version`` node.  Left alone: references to a
CTE of the query (its body is rewritten where it reads tables), DUAL,
table functions (``TABLE(...)``) and tables that already carry an ``AS OF``
of the user's own (they asked for that point).  A table over a database link
is refused: the remote database has its own SCNs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from dms_pkg.backends.oracle_sql import parse_query, render
from dms_pkg.chunking.dialects import get_dialect
from dms_pkg.errors import FEATURE_NOT_SUPPORTED, INSUFFICIENT_PRIVILEGE, DmsError

SCN_BIND = "dms_scn"
CURRENT_SCN_SQL = "SELECT CURRENT_SCN FROM V$DATABASE"
FALLBACK_SCN_SQL = "SELECT DBMS_FLASHBACK.GET_SYSTEM_CHANGE_NUMBER FROM DUAL"
# ORA numbers that mean "this way of reading the SCN is not granted to you".
_NOT_GRANTED = frozenset({942, 1031, 904, 6550})
_DUAL = "DUAL"


def current_scn_sql(*, fallback: bool = False) -> str:
    """The statement that reads the current SCN: V$DATABASE, or the
    DBMS_FLASHBACK function when V$DATABASE is not granted (``fallback``)."""
    return FALLBACK_SCN_SQL if fallback else CURRENT_SCN_SQL


def current_scn(connection: Any) -> int:
    """The database's current SCN through an oracledb connection, trying
    V$DATABASE first and DBMS_FLASHBACK next; refused (42501) when neither
    is granted, naming both grants."""
    import oracledb

    from dms_pkg.backends.oracle_errors import classify

    failures: list[str] = []
    for statement in (CURRENT_SCN_SQL, FALLBACK_SCN_SQL):
        try:
            with connection.cursor() as cur:
                cur.execute(statement)
                row = cur.fetchone()
        except oracledb.DatabaseError as exc:
            fault = classify(exc)
            number = int(fault.code[4:]) if fault.code.startswith("ORA-") else None
            if number not in _NOT_GRANTED:
                raise fault.as_dms_error("cannot read the Oracle SCN") from None
            failures.append(fault.message.splitlines()[0])
            continue
        if row is None or row[0] is None:
            raise DmsError("Oracle returned no SCN", sqlstate="XX000")
        return int(row[0])
    raise DmsError(
        "cannot read the Oracle SCN for a consistent read: " + "; ".join(failures),
        sqlstate=INSUFFICIENT_PRIVILEGE,
        hint="GRANT SELECT ON V_$DATABASE (or SELECT_CATALOG_ROLE) or GRANT EXECUTE ON "
        "DBMS_FLASHBACK to the source login, or run without a consistent read",
    )


@dataclass(frozen=True)
class AsOfQuery:
    """A query rewritten to read at one SCN, and the bind that carries it."""

    sql: str
    params: dict[str, int]


def check_scn(scn: object) -> int:
    """An SCN is a non-negative integer (bool is no SCN)."""
    if isinstance(scn, bool) or not isinstance(scn, int) or scn < 0:
        raise DmsError(f"an SCN must be a non-negative integer, got {scn!r}",
                       sqlstate="22023", hint="pass the number current_scn returned")
    return scn


def as_of_scn(query_sql: str, scn: int) -> AsOfQuery:
    """``query_sql`` with every table it reads read ``AS OF SCN :dms_scn``.

    The query's own binds are kept; ``params`` holds only ``dms_scn``: merge
    it with the chunk's bounds when executing.
    """
    value = check_scn(scn)
    tree = parse_query(query_sql)
    as_of_scn_tree(tree, exp.Placeholder(this=SCN_BIND))
    return AsOfQuery(render(tree), {SCN_BIND: value})


def as_of_scn_tree(tree: exp.Expr, point: exp.Expr) -> list[exp.Table]:
    """Set ``AS OF SCN <point>`` on every base table of ``tree`` in place;
    returns the tables it changed."""
    changed: list[exp.Table] = []
    for table in list(tree.find_all(exp.Table)):
        if not _reads_stored_rows(table):
            continue
        if table.args.get("version") is not None:
            continue  # the user's own AS OF: keep the point they chose
        if _names_cte(table):
            continue
        table.set("version", exp.Version(this="SCN", kind="AS OF", expression=point.copy()))
        changed.append(table)
    return changed


def _reads_stored_rows(table: exp.Table) -> bool:
    """A table, view or synonym (not TABLE(...), not DUAL, not over a DB link)."""
    if not isinstance(table.this, exp.Identifier):
        return False  # TABLE(collection) or a table function
    if isinstance(table.parent, (exp.Lateral,)):
        return False
    name = _normalized(table.this)
    schema = table.args.get("db")
    if name == _DUAL and (schema is None or _normalized(schema) == "SYS"):
        return False
    if _dblink(table):
        shown = table.copy()
        shown.set("alias", None)
        raise DmsError(
            f"{shown.sql(dialect='oracle')} is read over a database link: AS OF SCN reads "
            "this database's SCN, which the remote database does not share",
            sqlstate=FEATURE_NOT_SUPPORTED,
            hint="read the remote table from its own database (its own connection), or "
            "run without a consistent read",
        )
    return True


def _dblink(table: exp.Table) -> bool:
    """``t@link`` (sqlglot keeps the link in the unquoted table name)."""
    name = table.this
    return isinstance(name, exp.Identifier) and not name.quoted and "@" in name.name


def _normalized(identifier: exp.Expr) -> str:
    if isinstance(identifier, exp.Identifier):
        return get_dialect("oracle").normalize(identifier)
    return identifier.name.upper()


def _names_cte(table: exp.Table) -> bool:
    """Whether ``table`` refers to a CTE visible where it stands.

    A CTE is visible in the body of its WITH and in the CTEs written after it
    (and in itself, for a recursive one); a schema-qualified name is always a
    stored table.
    """
    if table.args.get("db") is not None or table.args.get("catalog") is not None:
        return False
    wanted = _normalized(table.this)
    child: exp.Expr = table
    through: exp.CTE | None = None  # the CTE whose body we are climbing out of
    node = table.parent
    while node is not None:
        if isinstance(node, exp.CTE):
            through = node
        with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
        if isinstance(with_, exp.With):
            ctes = list(with_.expressions)
            if child is with_ and through is not None and through in ctes:
                ctes = ctes[: ctes.index(through) + 1]
            if any(_normalized(cte.args["alias"].this) == wanted for cte in ctes):
                return True
        child, node = node, node.parent
    return False
