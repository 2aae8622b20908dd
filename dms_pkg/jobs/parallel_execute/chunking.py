"""create_chunks_by_rowid, _by_number_col and _by_sql: a task's table cut into ranges.

These run as the caller (SECURITY INVOKER): the table is read with the
caller's own privileges, so a task can only be made of what its owner may
read.  The chunks are written through the package's definer functions.

- By number column, as Oracle does it: from MIN to MAX of the column in
  ranges of ``chunk_size`` values.  Rows whose column is NULL are in no
  chunk (a BETWEEN never matches NULL) -- the call says how many there are.
  A column with fractional values is refused: integer-wide ranges would
  miss the values between them.
- By ROWID: ranges of whole pages (``ctid`` from ``(first, 0)`` to
  ``(last, 65535)``) -- ``chunk_size`` pages each, or, with ``by_row``,
  as many pages as hold about ``chunk_size`` rows.
- By SQL: the query's rows are the chunks, in the order returned.

Bad arguments (no such table or column, a view for ROWID chunks, a query
that does not return two columns) are refused before anything is written;
a chunking query that fails when it runs leaves the task CHUNKING_FAILED.
"""

from __future__ import annotations

import math
from typing import Any

from dms_pkg.db.faults import fault_of
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.errors import DmsError
from dms_pkg.jobs.parallel_execute.errors import INVALID_TABLE
from dms_pkg.security import OPERATOR, require_role

NUMBER_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")


def _table(db: PlpyDatabase, owner: str | None, name: str | None) -> dict[str, Any]:
    """The table's catalog row.  Oracle names come upper case (SCOTT.EMP): when
    no table has the exact name, its lower-case spelling is looked for."""
    if not name:
        raise INVALID_TABLE.error("table_name is NULL", hint="name the table to chunk")
    for schema, table in ((owner, name), (owner and owner.lower(), name.lower())):
        rows = db.query(
            "SELECT c.oid::bigint AS oid, c.relkind::text AS relkind, n.nspname::text AS schema,"
            " c.relname::text AS name, c.relpages::bigint AS relpages,"
            " c.reltuples::float8 AS reltuples"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = $1::text AND ($2::text IS NULL AND"
            " pg_catalog.pg_table_is_visible(c.oid) OR n.nspname = $2::text)",
            [table, schema])
        if rows:
            return rows[0]
    where = f"{owner}.{name}" if owner else name
    raise INVALID_TABLE.error(f"table {where} does not exist",
                              hint="table_owner is the schema, table_name the table")


def _qualified(plpy: Any, table: dict[str, Any]) -> str:
    return f"{plpy.quote_ident(table['schema'])}.{plpy.quote_ident(table['name'])}"


def by_number_col(plpy: Any, task_name: str, table_owner: str | None, table_name: str | None,
                  table_column: str | None, chunk_size: Any) -> None:
    db = PlpyDatabase(plpy)
    require_role(db, OPERATOR)
    size = _chunk_size(chunk_size)
    table = _table(db, table_owner, table_name)
    if table["relkind"] not in ("r", "p", "m", "f", "v"):
        raise INVALID_TABLE.error(f"{table['schema']}.{table['name']} is not a table")
    column, kind = _number_column(db, table, table_column)
    target = _qualified(plpy, table)
    ident = plpy.quote_ident(column)
    # Separate statements, so that an index on the column answers each of them
    # (min/max from its ends, IS NULL from its NULL entries) without a scan.
    stats = db.query(f"SELECT (SELECT min({ident}) FROM {target})::numeric AS lo,"
                     f" (SELECT max({ident}) FROM {target})::numeric AS hi,"
                     f" (SELECT count(*) FROM {target} WHERE {ident} IS NULL) AS nulls")[0]
    integral = kind in ("smallint", "integer", "bigint") or not db.query(
        f"SELECT 1 AS x FROM {target} WHERE {ident} <> trunc({ident}) LIMIT 1")
    if not integral:
        raise INVALID_TABLE.error(
            f"column {column} of {table['schema']}.{table['name']} has values with a "
            "fractional part: ranges of whole numbers would miss the values between them",
            hint="chunk by an integer column, or give exact ranges with create_chunks_by_sql")
    task_id = _begin(db, task_name, "NUMBER_RANGE", table, column)
    chunks = db.query("SELECT dms.pe_add_number_chunks($1::bigint, $2::numeric, $3::numeric,"
                      " $4::numeric) AS n", [task_id, stats["lo"], stats["hi"], size])[0]["n"]
    db.commit()
    if stats["nulls"]:
        plpy.notice(f"task {task_name}: {stats['nulls']} row{'s' if stats['nulls'] != 1 else ''}"
                    f" of {table['schema']}.{table['name']} have NULL in {column} and are in "
                    "no chunk")
    plpy.notice(f"task {task_name}: {chunks} chunk{'s' if chunks != 1 else ''} by {column}")


def _number_column(db: PlpyDatabase, table: dict[str, Any], name: str | None
                   ) -> tuple[str, str]:
    if not name:
        raise INVALID_TABLE.error("table_column is NULL", hint="name a number column")
    for candidate in (name, name.lower()):
        rows = db.query(
            "SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, NULL) AS type"
            " FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::bigint::oid"
            " AND a.attname = $2::text AND a.attnum > 0 AND NOT a.attisdropped",
            [table["oid"], candidate])
        if rows:
            if rows[0]["type"] not in NUMBER_TYPES:
                raise INVALID_TABLE.error(
                    f"column {rows[0]['name']} of {table['schema']}.{table['name']} is "
                    f"{rows[0]['type']}, not a number",
                    hint="chunk by a number column, or by rowid or SQL")
            return str(rows[0]["name"]), str(rows[0]["type"])
    raise INVALID_TABLE.error(
        f"column {name} of {table['schema']}.{table['name']} does not exist",
        hint="table_column names a number column of the table")


def by_rowid(plpy: Any, task_name: str, table_owner: str | None, table_name: str | None,
             by_row: bool | None, chunk_size: Any) -> None:
    db = PlpyDatabase(plpy)
    require_role(db, OPERATOR)
    size = _chunk_size(chunk_size)
    table = _table(db, table_owner, table_name)
    if table["relkind"] == "p":
        raise INVALID_TABLE.error(
            f"{table['schema']}.{table['name']} is partitioned: tuple ids repeat across its "
            "partitions",
            hint="chunk each partition, or chunk by a number column")
    if table["relkind"] not in ("r", "m"):
        raise INVALID_TABLE.error(f"{table['schema']}.{table['name']} has no rowids "
                                  "(it is not a table)",
                                  hint="chunk it by a number column or by SQL")
    target = _qualified(plpy, table)
    # SELECT on the table first: the size of a table one may not read is not handed out.
    db.query(f"SELECT FROM {target} LIMIT 0")
    pages = int(db.query("SELECT (pg_catalog.pg_relation_size($1::bigint::oid)"
                         " / current_setting('block_size')::bigint) AS n",
                         [table["oid"]])[0]["n"])
    per_chunk = size
    if by_row and pages:
        if table["relpages"] > 0 and table["reltuples"] > 0:
            per_page = table["reltuples"] / table["relpages"]
        else:  # never analysed: count
            per_page = int(db.query(f"SELECT count(*) AS n FROM {target}")[0]["n"]) / pages
        per_chunk = max(1, math.ceil(size / max(per_page, 1.0)))
    task_id = _begin(db, task_name, "ROWID_RANGE", table, None)
    chunks = db.query("SELECT dms.pe_add_page_chunks($1::bigint, $2::bigint, $3::bigint) AS n",
                      [task_id, pages, per_chunk])[0]["n"]
    db.commit()
    plpy.notice(f"task {task_name}: {chunks} chunk{'s' if chunks != 1 else ''} of "
                f"{per_chunk} page{'s' if per_chunk != 1 else ''} ({pages} in all)")


def by_sql(plpy: Any, task_name: str, sql_stmt: str | None, by_rowid: bool | None) -> None:
    db = PlpyDatabase(plpy)
    require_role(db, OPERATOR)
    if not sql_stmt or not sql_stmt.strip():
        raise DmsError("sql_stmt is empty", sqlstate="42601",
                       hint="give a query returning (start_id, end_id) per chunk")
    kind = "ROWID_RANGE" if by_rowid else "NUMBER_RANGE"
    task_id = _begin(db, task_name, kind, None, None)
    try:
        query = sql_stmt.strip().rstrip(";")
        width = len(plpy.execute(f"SELECT * FROM ({query}) AS q LIMIT 0").colnames())
        if width != 2:
            names = [""] * width
        else:
            # Named by position: the query's own names may repeat ("tid", "tid").
            result = plpy.execute(f"SELECT * FROM ({query}) AS q(start_id, end_id)")
            names = ["start_id", "end_id"]
        if len(names) != 2:
            raise DmsError(
                f"sql_stmt returns {len(names)} column{'s' if len(names) != 1 else ''}; "
                "a chunk is two: start_id, end_id",
                sqlstate="42601", hint="SELECT start_id, end_id FROM ... (one row per chunk)")
        starts = [row[names[0]] for row in result]
        ends = [row[names[1]] for row in result]
        if any(v is None for v in starts + ends):
            raise DmsError("sql_stmt returned a chunk with a NULL bound: it would match no row",
                           sqlstate="22004", hint="filter out NULLs in the query")
        none: list[Any] = [None] * len(starts)
        if by_rowid:
            params = [task_id, none, none, [str(v) for v in starts], [str(v) for v in ends]]
        else:
            params = [task_id, [str(v) for v in starts], [str(v) for v in ends], none, none]
        chunks = db.query("SELECT dms.pe_add_listed_chunks($1::bigint, $2::text[]::numeric[],"
                          " $3::text[]::numeric[], $4::text[]::tid[], $5::text[]::tid[]) AS n",
                          params)[0]["n"]
    except Exception as exc:
        db.rollback()
        fault = fault_of(exc)
        message = exc.message if isinstance(exc, DmsError) else (
            fault.message if fault else str(exc))
        db.query("SELECT dms.pe_chunking_failed($1::bigint, $2::text)", [task_id, message])
        db.commit()
        raise
    db.commit()
    plpy.notice(f"task {task_name}: {chunks} chunk{'s' if chunks != 1 else ''} from sql_stmt")


def _begin(db: PlpyDatabase, task_name: str, kind: str, table: dict[str, Any] | None,
           column: str | None) -> int:
    return int(db.query(
        "SELECT dms.pe_begin_chunking($1::text, $2::text, $3::text, $4::text, $5::text) AS id",
        [task_name, kind, table["schema"] if table else None, table["name"] if table else None,
         column])[0]["id"])


def _chunk_size(value: Any) -> int:
    if value is None or not float(value) >= 1 or float(value) != int(float(value)):
        raise DmsError(f"chunk_size must be a whole number from 1, not {value}",
                       sqlstate="22023", hint="rows, blocks or values per chunk")
    return int(float(value))
