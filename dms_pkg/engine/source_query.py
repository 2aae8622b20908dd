"""The source query as the engine runs it, and what the source's catalog says about it.

**Parse first, then run only what was parsed.**  A source query reaches the
server in several probes before any chunk runs (``EXPLAIN`` for the row
estimate, a zero-row probe of its columns, the checkpoint's ``max()``).  Given
as text, ``'<query>; SELECT nextval(''s'')'`` would run both statements in
each probe: PL/Python's ``plpy.execute`` and libpq's simple protocol both
accept several statements.  So the text is parsed with sqlglot first (exactly
one statement, a query that only reads, no bind parameters:
``dms_pkg.chunking.parse``) and every probe runs sqlglot's rendering of that
one parsed statement -- the same rendering the chunk queries are made of, so
the probes describe exactly what the chunks will run.  The rendering has no
``;`` and no second statement, whatever the input text was.

Two things a query may do that are not errors but repeat on every retry and
resume are said on the run (a NOTICE and ``dms.run.notes``):

* it calls functions that change data or state: user-defined VOLATILE
  functions (the catalog cannot tell whether one writes, so every one is
  named) and built-ins known to have side effects (``nextval``,
  ``set_config``, advisory locks, large objects, dblink, ...);
* the row estimate that sizes the run comes from statistics that were never
  gathered, or that many changes have outdated, on a table it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from dms_pkg.chunking.dialects import get_dialect
from dms_pkg.chunking.parse import parse_query
from dms_pkg.db.base import Database

# Built-in functions (and dblink's) that write or change state outside the row
# they return; matched on the function's name, in any schema.
SIDE_EFFECT_NAMES = frozenset({
    "nextval", "setval", "set_config", "pg_notify", "pg_terminate_backend",
    "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal",
    "pg_create_restore_point", "pg_logical_emit_message", "pg_drop_replication_slot",
    "lowrite", "pg_file_write", "pg_file_unlink", "pg_file_rename",
})
SIDE_EFFECT_PREFIXES = ("pg_advisory_", "pg_try_advisory_", "lo_", "dblink",
                        "pg_stat_reset", "pg_create_", "pg_replication_origin_")
# Statistics count as outdated when this share of the rows analysed last
# changed since (autovacuum analyses at 10 %), and at least this many rows.
STALE_SHARE = 0.2
STALE_MIN_ROWS = 1000


def parsed(sql: str, dialect: str = "postgres") -> exp.Query:
    """The source text as one query tree, or the DmsError that says why not."""
    return parse_query(sql, get_dialect(dialect))


def render(tree: exp.Query, dialect: str = "postgres") -> str:
    """The text a probe runs: the one parsed statement, as the chunk queries render it."""
    return tree.sql(dialect=get_dialect(dialect).sqlglot)


def runnable(sql: str, dialect: str = "postgres") -> str:
    """``sql`` checked (one reading query) and rendered as the one statement to run."""
    return render(parsed(sql, dialect), dialect)


def _functions(tree: exp.Query) -> list[tuple[str, str, int]]:
    """(schema or '', name, argument count) of each function the query calls by a
    name sqlglot does not know -- user-defined functions and PostgreSQL-specific
    built-ins; the ones it knows (upper, count, coalesce, ...) are standard SQL
    and change nothing."""
    found: dict[tuple[str, str, int], None] = {}
    for node in tree.find_all(exp.Anonymous):
        name = node.args.get("this")
        if isinstance(name, exp.Identifier):
            text = name.this if name.quoted else name.this.lower()
        else:
            text = str(name).lower()
        schema = ""
        if isinstance(node.parent, exp.Dot) and node.parent.expression is node:
            qualifier = node.parent.this
            if isinstance(qualifier, exp.Identifier):
                schema = qualifier.this if qualifier.quoted else qualifier.this.lower()
            elif isinstance(qualifier, exp.Column | exp.Var):
                schema = qualifier.name.lower()
        found[(schema, text, len(node.expressions))] = None
    return list(found)


def side_effect_functions(db: Database, tree: exp.Query) -> list[str]:
    """The functions ``tree`` calls that can change data or state, as
    ``name(argument types)`` (schema-qualified when not on the search_path)."""
    calls = _functions(tree)
    if not calls:
        return []
    rows = db.query(
        "SELECT DISTINCT p.oid::pg_catalog.regprocedure::text AS signature,"
        " p.proname::text AS name, p.provolatile = 'v' AS volatile,"
        " n.nspname IN ('pg_catalog', 'information_schema') AS builtin"
        " FROM pg_catalog.pg_proc p"
        " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
        " JOIN ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]),"
        "                 pg_catalog.unnest($3::bigint[])) AS u(schema, name, nargs)"
        "   ON p.proname = u.name"
        "  AND CASE WHEN u.schema = '' THEN pg_catalog.pg_function_is_visible(p.oid)"
        "           ELSE n.nspname = u.schema END"
        # the overloads this call can be: as many arguments, fewer with defaults, variadic
        "  AND (p.pronargs - p.pronargdefaults <= u.nargs AND u.nargs <= p.pronargs"
        "       OR p.provariadic <> 0)"
        " ORDER BY 1",
        [[c[0] for c in calls], [c[1] for c in calls], [c[2] for c in calls]],
    )
    return [
        str(r["signature"]) for r in rows
        if _side_effect_name(str(r["name"])) or (r["volatile"] and not r["builtin"])
    ]


def _side_effect_name(name: str) -> bool:
    return name in SIDE_EFFECT_NAMES or name.startswith(SIDE_EFFECT_PREFIXES)


def side_effect_note(functions: list[str]) -> str | None:
    if not functions:
        return None
    return (
        "the source query calls " + ", ".join(functions)
        + ", which can change data or state (side-effecting or VOLATILE functions); "
        "they run again for the rows of every chunk that is retried or resumed"
    )


def read_tables(tree: exp.Query, dialect: str = "postgres") -> list[str]:
    """The tables the query reads (not its CTEs), each as a name to_regclass takes."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names: dict[str, None] = {}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: FROM f(...)
        if not table.args.get("db") and table.name in ctes:
            continue
        bare = exp.Table(this=table.this.copy(), db=table.args.get("db"))
        names[bare.sql(dialect=get_dialect(dialect).sqlglot)] = None
    return list(names)


@dataclass(frozen=True)
class TableStatistics:
    """What the planner's statistics of one table say, and whether they can be trusted."""

    name: str  # as regclass prints it
    tuples: float  # pg_class.reltuples: -1 when never analysed
    pages: int
    changed: int  # rows changed since the last ANALYZE
    owned: bool  # the session may ANALYZE it

    @property
    def never(self) -> bool:
        return self.tuples < 0 and (self.pages > 0 or self.changed > 0)

    @property
    def stale(self) -> bool:
        return self.never or (
            self.tuples >= 0 and self.changed >= max(STALE_MIN_ROWS, STALE_SHARE * self.tuples))


def table_statistics(db: Database, tables: list[str]) -> list[TableStatistics]:
    """The statistics of each table ``tables`` names (tables and materialized views)."""
    if not tables:
        return []
    rows = db.query(
        "SELECT c.oid::pg_catalog.regclass::text AS name, c.reltuples::float8 AS reltuples,"
        " c.relpages::bigint AS relpages,"
        " coalesce(pg_catalog.pg_stat_get_mod_since_analyze(c.oid), 0)::bigint AS changed,"
        " pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE') AS owned"
        " FROM pg_catalog.pg_class c"
        " WHERE c.relkind IN ('r', 'm') AND c.oid IN"
        " (SELECT pg_catalog.to_regclass(t) FROM pg_catalog.unnest($1::text[]) AS t)"
        " ORDER BY 1",
        [tables],
    )
    return [TableStatistics(str(r["name"]), float(r["reltuples"]), int(r["relpages"]),
                            int(r["changed"]), bool(r["owned"])) for r in rows]


def stale_statistics(db: Database, tables: list[str], skip: frozenset[str] = frozenset()
                     ) -> list[str]:
    """A note for each table whose planner statistics are missing or outdated.

    ``reltuples < 0`` is PostgreSQL's (14+) "never vacuumed or analysed": the
    planner then guesses the row count from the table's size, often several
    times too low, and the run plans too few chunks and workers.
    """
    notes = []
    for t in table_statistics(db, tables):
        if t.name in skip:  # analysed just now (its change count lags until commit)
            continue
        if t.never:
            notes.append(
                f"statistics of {t.name} were never gathered (no ANALYZE since it was created "
                "or loaded), so the row estimate that sizes the run's chunks and workers may "
                f"be far off; run ANALYZE {t.name} first")
        elif t.stale:
            notes.append(
                f"statistics of {t.name} are stale ({t.changed:,} rows changed since its last "
                f"ANALYZE, when it had about {t.tuples:,.0f}), so the row estimate that sizes "
                f"the run's chunks and workers may be off; run ANALYZE {t.name} first")
    return notes
