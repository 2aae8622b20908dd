"""What the engine keeps in the target database: the chunk ledger and staging tables.

Truncate-and-load never empties the target until the new rows are all there
(DESIGN §3): chunks load into a staging table next to the target, and when
every chunk is done one target transaction empties the target and fills it
from the staging table.  The target stays the same table -- its indexes,
constraints, triggers, grants, comments and dependent views are untouched --
and a failed or stopped run leaves its previous contents as they were.

The staging table is ``UNLOGGED`` (no WAL for rows that are written again at
the swap) and carries the target's defaults, NOT NULL and CHECK constraints,
so a row the target would refuse fails its chunk, with the chunk's message,
not the swap.  Those are the target's constraints *when the run was
planned*: before a run (re)starts, ``align_staging`` makes them the target's
current ones, so that dropping a constraint that failed chunks and resuming
loads them, as docs/operations.md says.
"""

from __future__ import annotations

import uuid

from psycopg import sql

from dms_pkg.db.base import Session
from dms_pkg.engine.columns import database_error, table_name

_LEDGER_DDL = (
    "CREATE SCHEMA IF NOT EXISTS dms_ledger",
    "CREATE TABLE IF NOT EXISTS dms_ledger.chunk_ledger ("
    " run_uuid uuid NOT NULL, chunk_no integer NOT NULL, rows bigint NOT NULL,"
    " committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    " CONSTRAINT chunk_ledger_pk PRIMARY KEY (run_uuid, chunk_no))",
)


def _q(composable: sql.Composable) -> str:
    return composable.as_string(None)


def ensure_ledger(session: Session, where: str) -> None:
    """The chunk ledger in the target database (dms install makes it in its own)."""
    found = session.query(
        "SELECT pg_catalog.to_regclass('dms_ledger.chunk_ledger') IS NOT NULL AS found")
    if found and found[0]["found"]:
        return
    try:
        for statement in _LEDGER_DDL:
            session.execute(statement)
    except Exception as exc:
        raise database_error(
            exc, f"cannot create the chunk ledger dms_ledger.chunk_ledger in {where}", "42501",
            detail="the ledger records each loaded chunk in the same transaction as its rows, "
            "so that no chunk is ever loaded twice",
            hint="let the connection's user create it once (CREATE privilege on the database), "
            "or create schema dms_ledger and the table as in migrations/0003_recovery.sql",
        ) from None


def staging_name(table: str) -> str:
    """A per-run name beside the target, within PostgreSQL's 63-byte limit."""
    return f"{table[:40]}__dms_stage_{uuid.uuid4().hex[:8]}"


def create_staging(session: Session, schema: str, table: str) -> str:
    """Create the staging table for a truncate-and-load; returns its bare name."""
    name = staging_name(table)
    statement = sql.SQL(
        "CREATE UNLOGGED TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    ).format(sql.Identifier(schema, name), sql.Identifier(schema, table))
    try:
        session.execute(_q(statement))
    except Exception as exc:
        raise database_error(
            exc, "cannot create the staging table for truncate-and-load of "
            f"{table_name(schema, table)}", "42501",
            hint="write_mode truncate loads into a table beside the target first: the caller "
            "needs CREATE on the target's schema (or use write_mode append)",
        ) from None
    return name


def swap_in(session: Session, schema: str, table: str, staging: str,
            columns: tuple[str, ...] | None) -> int:
    """Replace the target's rows with the staging table's, in the caller's transaction.

    ``columns`` are the loaded ones (None: every column the target does not
    generate itself).  DELETE rather than TRUNCATE when other tables'
    foreign keys point at the target (TRUNCATE refuses those).  Returns the
    rows now in the target.
    """
    if columns is None:
        columns = tuple(r["name"] for r in session.query(
            "SELECT a.attname::text AS name FROM pg_catalog.pg_attribute a"
            " WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text,"
            " $2::text)) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''"
            " ORDER BY a.attnum", [schema, table]))
    target = sql.Identifier(schema, table)
    referenced = session.query(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE contype = 'f' AND"
        " confrelid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text)))"
        " AS fk",
        [schema, table],
    )[0]["fk"]
    session.execute(_q(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target)))
    session.execute(_q(sql.SQL("DELETE FROM {}" if referenced else "TRUNCATE {}").format(target)))
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    rows = session.execute(_q(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        target, names, names, sql.Identifier(schema, staging))))
    session.execute(_q(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, staging))))
    return rows


_CHECKS_SQL = (
    "SELECT c.conname::text AS name, pg_catalog.pg_get_constraintdef(c.oid) AS definition"
    " FROM pg_catalog.pg_constraint c WHERE c.contype = 'c' AND c.conrelid ="
    " pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text)) ORDER BY 1"
)
_NOT_NULL_SQL = (
    "SELECT a.attname::text AS name FROM pg_catalog.pg_attribute a WHERE a.attrelid ="
    " pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))"
    " AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull ORDER BY a.attnum"
)


def align_staging(session: Session, schema: str, table: str, staging: str) -> list[str]:
    """Give the staging table the target's current CHECK and NOT NULL constraints.

    A constraint the target no longer has is dropped from the staging table
    (the documented fix for chunks it failed is to drop or change it on the
    target, then resume); a CHECK the target has gained is added ``NOT VALID``
    (rows already staged are checked once more by the target at the swap,
    which also enforces a NOT NULL added since).  Returns what changed, for the
    run's notes.  Runs in the caller's transaction.
    """
    changed: list[str] = []
    staged = {r["name"]: r["definition"] for r in session.query(_CHECKS_SQL, [schema, staging])}
    current = {r["name"]: r["definition"] for r in session.query(_CHECKS_SQL, [schema, table])}
    stage_table = sql.Identifier(schema, staging)
    wanted = {_valid_form(d) for d in current.values()}
    dropped = [name for name, definition in staged.items()
               if _valid_form(definition) not in wanted]
    for name in dropped:
        session.execute(_q(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            stage_table, sql.Identifier(name))))
        changed.append(f"dropped CHECK {name}")
    kept = {_valid_form(d) for name, d in staged.items() if name not in dropped}
    for name, definition in current.items():
        if _valid_form(definition) in kept:
            continue
        # The definition is the server's own deparsed text of the target's constraint.
        session.execute(_q(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID").format(
            stage_table, sql.Identifier(name), sql.SQL(_valid_form(definition)))))
        changed.append(f"added CHECK {name}")
    required = {r["name"] for r in session.query(_NOT_NULL_SQL, [schema, table])}
    for name in [r["name"] for r in session.query(_NOT_NULL_SQL, [schema, staging])]:
        if name not in required:
            session.execute(_q(sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
                stage_table, sql.Identifier(name))))
            changed.append(f"dropped NOT NULL of {name}")
    return changed


def _valid_form(definition: str) -> str:
    return definition.removesuffix(" NOT VALID")


def staging_exists(session: Session, schema: str, staging: str) -> bool:
    rows = session.query(
        "SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', $1::text, $2::text))"
        " IS NOT NULL AS found",
        [schema, staging],
    )
    return bool(rows and rows[0]["found"])


def drop_staging(session: Session, schema: str, staging: str) -> None:
    session.execute(_q(sql.SQL("DROP TABLE IF EXISTS {}").format(
        sql.Identifier(schema, staging))))


LEDGER_RETENTION_DAYS = 30


def prune_ledger(session: Session) -> None:
    """Ledger rows are kept as the record of what each run committed (a chunk
    appears once); after a month they are no longer worth their space."""
    session.execute(
        "DELETE FROM dms_ledger.chunk_ledger"
        f" WHERE committed_at < pg_catalog.clock_timestamp() - interval '{LEDGER_RETENTION_DAYS}"
        " days'")
