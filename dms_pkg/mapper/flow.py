"""The job flow: what a job does, built from its details and kept in DMS_JOBFLW.DWLOGIC.

Model (as in the DWTOOL packages): a mapping's target columns are grouped in
combinations (MAPCMBCD).  The key columns (TRGKEYFLG 'Y') belong to every
combination.  Each detail row names a query (MAPLOGIC: SQL, or the code of a
DMS_MAPRSQL row), the source column holding the business key in it
(KEYCLNM; a comma-separated list for a composite key) and the source column
holding the value (VALCLNM).  A combination's source SQL joins **all** its
detail rows' queries on the key columns -- the key columns' own query drives,
the others are LEFT JOINed -- and returns the key and value columns under their
target names.

DWLOGIC is that flow written as a short Python call a DBA can read
(``job_flow(mapref=..., combinations=[...])``).  It is never executed: the
runner reads its arguments with ``ast.literal_eval``, so the stored text is
data, and what the DBA reads is exactly what runs.
"""

from __future__ import annotations

import ast
import pprint
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from dms_pkg.chunking.dialects import get_dialect
from dms_pkg.chunking.parse import parse_query
from dms_pkg.errors import DmsError

FLOW_ERROR = "P0001"
PARAM_COUNT = 10


@dataclass
class Combination:
    code: str | None
    source_conid: int | None
    sql: str
    scd2: list[str] = field(default_factory=list)
    scd1: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self.scd2 + self.scd1

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "source_conid": self.source_conid, "scd2": self.scd2,
                "scd1": self.scd1, "sql": self.sql}


@dataclass
class JobFlow:
    mapref: str
    jobid: int
    target: dict[str, Any]  # conid, schema, table, type
    keys: list[str]
    checkpoint: dict[str, Any]  # strategy, column
    chunk_size: int | None
    combinations: list[Combination]

    @property
    def value_columns(self) -> list[str]:
        return [c for comb in self.combinations for c in comb.columns]


@dataclass(frozen=True)
class Query:
    """A detail row's query, resolved: its SQL text and the connection it runs on."""

    sql: str
    conid: int | None


def target_name(column: str) -> str:
    """Target identifiers are folded to lower case, as PostgreSQL folds unquoted names."""
    return column.lower()


def split_keys(text: str | None) -> list[str]:
    """KEYCLNM's column names: one, or a comma-separated list for a composite key."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def build(job: Mapping[str, Any], details: Sequence[Mapping[str, Any]],
          resolve: Any, dialect: str = "postgres") -> JobFlow:
    """The job flow of a job (DMS_JOB row) and its current details (DMS_JOBDTL rows).

    ``resolve(maplogic) -> Query`` turns a MAPLOGIC value into SQL and its
    connection (a DMS_MAPRSQL code, or SQL for this database).
    """
    ordered = sorted(details, key=lambda d: (d.get("excseq") or 0, str(d["trgclnm"])))
    keys = sorted((d for d in ordered if d.get("trgkeyflg") == "Y"),
                  key=lambda d: d.get("trgkeyseq") or 0)
    if not keys:
        raise DmsError(f"mapping {job['mapref']} has no key column", sqlstate=FLOW_ERROR,
                       hint="set TRGKEYFLG 'Y' on the business key columns and validate again")
    driver = resolve(keys[0]["maplogic"])
    key_sources = [str(k.get("valclnm") or k.get("keyclnm")) for k in keys]
    key_targets = [target_name(str(k["trgclnm"])) for k in keys]
    groups: dict[str | None, list[Mapping[str, Any]]] = {}
    for d in ordered:
        if d.get("trgkeyflg") != "Y":
            groups.setdefault(d.get("mapcmbcd"), []).append(d)
    if not groups:
        raise DmsError(f"mapping {job['mapref']} maps no column besides its key",
                       sqlstate=FLOW_ERROR)
    combinations = [
        _combination(code, rows, driver, key_sources, key_targets, resolve, dialect,
                     str(job["mapref"]))
        for code, rows in groups.items()
    ]
    checkpoint_column = job.get("chkpntclnm")
    return JobFlow(
        mapref=str(job["mapref"]),
        jobid=int(job["jobid"]),
        target={"conid": job.get("trgconid"), "schema": target_name(str(job["trgschm"])),
                "table": target_name(str(job["trgtbnm"])), "type": str(job["trgtbtyp"])},
        keys=key_targets,
        checkpoint={"strategy": "KEY" if job.get("chkpntstrtgy") == "KEY"
                    and job.get("chkpntenbld") != "N" else "NONE",
                    "column": target_name(checkpoint_column) if checkpoint_column else None},
        chunk_size=job.get("blkprcrows"),
        combinations=combinations,
    )


def _combination(code: str | None, rows: list[Mapping[str, Any]], driver: Query,
                 key_sources: list[str], key_targets: list[str], resolve: Any,
                 dialect: str, mapref: str) -> Combination:
    chunk_dialect = get_dialect(dialect)
    queries: list[Query] = [driver]
    for row in rows:
        query = resolve(row["maplogic"])
        if query not in queries:
            queries.append(query)
    conids = {q.conid for q in queries}
    if len(conids) > 1:
        raise DmsError(
            f"combination {code or '(default)'} of mapping {mapref} reads from more than one "
            "connection; its queries are joined in one statement, so they must run on one "
            "source", sqlstate=FLOW_ERROR,
            hint="give the combination's queries the same SQLCONID, or split the combination")
    alias = {q: f"q{i}" for i, q in enumerate(queries, start=1)}
    select: list[exp.Expr] = [
        exp.alias_(exp.column(src, table="q1"), tgt) for src, tgt in zip(
            key_sources, key_targets, strict=True)
    ]
    scd1: list[str] = []
    scd2: list[str] = []
    for row in rows:
        name = target_name(str(row["trgclnm"]))
        source = alias[resolve(row["maplogic"])]
        select.append(exp.alias_(exp.column(str(row["valclnm"]), table=source), name))
        (scd2 if row.get("scdtyp") == 2 else scd1).append(name)
    tree = exp.select(*select).from_(
        exp.Subquery(this=parse_query(driver.sql, chunk_dialect), alias=exp.TableAlias(
            this=exp.to_identifier("q1"))))
    for query in queries[1:]:
        name = alias[query]
        joined_keys = split_keys(next(
            str(r.get("keyclnm")) for r in rows if resolve(r["maplogic"]) == query))
        if len(joined_keys) != len(key_sources):
            raise DmsError(
                f"combination {code or '(default)'} of mapping {mapref}: a query names "
                f"{len(joined_keys)} key column(s) in KEYCLNM, the mapping has "
                f"{len(key_sources)}", sqlstate=FLOW_ERROR,
                hint="list the query's key columns in KEYCLNM, comma-separated, in TRGKEYSEQ "
                "order")
        condition = exp.and_(*(
            exp.EQ(this=exp.column(k, table=name), expression=exp.column(d, table="q1"))
            for k, d in zip(joined_keys, key_sources, strict=True)))
        tree = tree.join(exp.Subquery(this=parse_query(query.sql, chunk_dialect),
                                      alias=exp.TableAlias(this=exp.to_identifier(name))),
                         on=condition, join_type="left")
    return Combination(code, driver.conid, tree.sql(dialect=chunk_dialect.sqlglot, pretty=True),
                       scd2, scd1)


# -- DWLOGIC text ------------------------------------------------------------

def render(flow: JobFlow) -> str:
    """The job flow as DWLOGIC: a short Python call, readable and diffable."""
    target = flow.target
    where = "this database" if target["conid"] is None else f"connection {target['conid']}"
    header = [
        f"# DWLOGIC of mapping {flow.mapref}, job {flow.jobid}: written by "
        "pkgdwjob.create_job_flow, do not edit.",
        f"# Target {target['schema']}.{target['table']} ({target['type']}) in {where}; "
        f"business key {', '.join(flow.keys)}.",
        "# Each combination reads its query in parallel chunks cut on the business key, stages",
        "# every chunk and merges it into the target with SQL"
        + (" (SCD2: new version on change; SCD1: update in place)." if target["type"] == "DIM"
           else " (rows are appended)."),
    ]
    if flow.checkpoint["strategy"] == "KEY":
        header.append(f"# Incremental: only rows with {flow.checkpoint['column']} at or above "
                      "the last loaded value (or NULL) are read;")
        header.append("# rows loaded already are not loaded twice.")
    combos = ",\n".join(_render_combination(c) for c in flow.combinations)
    body = (
        "job_flow(\n"
        f"    mapref={flow.mapref!r},\n"
        f"    jobid={flow.jobid!r},\n"
        f"    target={_literal(flow.target)},\n"
        f"    keys={flow.keys!r},\n"
        f"    checkpoint={_literal(flow.checkpoint)},\n"
        f"    chunk_size={flow.chunk_size!r},\n"
        f"    combinations=[\n{combos},\n    ],\n"
        ")\n"
    )
    return "\n".join(header) + "\n" + body


def _literal(value: Mapping[str, Any]) -> str:
    return pprint.pformat(dict(value), sort_dicts=False, width=100)


def _render_combination(c: Combination) -> str:
    sql_text = c.sql.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return (
        "        dict(\n"
        f"            code={c.code!r},\n"
        f"            source_conid={c.source_conid!r},\n"
        f"            scd2={c.scd2!r},\n"
        f"            scd1={c.scd1!r},\n"
        f'            sql="""\n{sql_text}\n""",\n'
        "        )"
    )


def parse(text: str) -> JobFlow:
    """Read DWLOGIC back without executing it (``ast.literal_eval`` per argument)."""
    try:
        tree = ast.parse(text, mode="exec")
        call = tree.body[-1].value  # type: ignore[attr-defined]
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "job_flow"):
            raise ValueError("not a job_flow(...) call")
        args: dict[str, Any] = {kw.arg: _literal_eval(kw.value) for kw in call.keywords
                                if kw.arg}
        combinations = [
            Combination(c["code"], c["source_conid"], str(c["sql"]).strip(), list(c["scd2"]),
                        list(c["scd1"]))
            for c in args["combinations"]
        ]
        return JobFlow(args["mapref"], int(args["jobid"]), dict(args["target"]),
                       list(args["keys"]), dict(args["checkpoint"]), args["chunk_size"],
                       combinations)
    except (SyntaxError, ValueError, KeyError, AttributeError, IndexError, TypeError) as exc:
        raise DmsError(f"the job flow (DWLOGIC) cannot be read: {exc}", sqlstate=FLOW_ERROR,
                       hint="re-create it with SELECT pkgdwjob.create_job_flow(p_mapref)"
                       ) from None


def _literal_eval(node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and not node.args:
        return {kw.arg: _literal_eval(kw.value) for kw in node.keywords if kw.arg}
    if isinstance(node, ast.List):
        return [_literal_eval(e) for e in node.elts]
    return ast.literal_eval(node)


# -- run-time SQL --------------------------------------------------------------

def with_params(sql_text: str, params: Sequence[str | None], dialect: str = "postgres") -> str:
    """``DWT_PARAM1`` .. ``DWT_PARAM10`` replaced by the run's parameter values as
    quoted literals (NULL when not given).  Done on the parsed query, so a value
    can never change the statement's structure."""
    chunk_dialect = get_dialect(dialect)
    values = {f"DWT_PARAM{i}": params[i - 1] if i <= len(params) else None
              for i in range(1, PARAM_COUNT + 1)}

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.upper() in values:
            value = values[node.name.upper()]
            return exp.Null() if value is None else exp.Literal.string(str(value))
        return node

    tree = parse_query(sql_text, chunk_dialect).transform(swap)
    return tree.sql(dialect=chunk_dialect.sqlglot)


def source_query(sql_text: str, column: str | None = None, last: str | None = None,
                 dialect: str = "postgres", ceiling: str | None = None) -> str:
    """``SELECT * FROM (<combination>) AS dms_src``, restricted to the rows from the
    last checkpoint value on when there is one.  The wrapper makes the business
    key an output column the chunk planner follows down to the driving table.

    The filter is ``column >= last``, not ``>``: rows that share the last
    value but were committed after the previous run read it are loaded too
    (the rows at ``last`` that are there already are read again, and a load
    never writes a key twice -- see ``merge_spec``).  Rows whose checkpoint
    value is NULL are read by every run: no ``>=`` ever selects them, and
    leaving them out would lose them without a word.  ``ceiling`` (the highest
    value an earlier combination of the same job run read) bounds the rows
    from above, so every combination of one run loads the same keys.

    The filter goes into the driving query itself when that is plainly the
    same (see ``_push_into_driver``): the planner then measures and cuts only
    the rows after the checkpoint, instead of cutting the whole table into
    chunks that are mostly empty."""
    chunk_dialect = get_dialect(dialect)
    inner = parse_query(sql_text, chunk_dialect)
    outer = exp.select("*").from_(exp.Subquery(this=inner, alias=exp.TableAlias(
        this=exp.to_identifier("dms_src"))))
    if column is not None and last is not None:
        bounds = (exp.Literal.string(last),
                  None if ceiling is None else exp.Literal.string(ceiling))
        if not _push_into_driver(inner, column, bounds):
            outer = outer.where(checkpoint_filter(exp.column(column, table="dms_src"), *bounds))
    return outer.sql(dialect=chunk_dialect.sqlglot)


def checkpoint_filter(value: exp.Expr, last: exp.Expr, ceiling: exp.Expr | None) -> exp.Expr:
    """``(value >= last [AND value <= ceiling]) OR value IS NULL`` (see ``source_query``)."""
    window: exp.Expr = exp.GTE(this=value.copy(), expression=last.copy())
    if ceiling is not None:
        window = exp.and_(window, exp.LTE(this=value.copy(), expression=ceiling.copy()))
    return exp.or_(window, exp.Is(this=value.copy(), expression=exp.Null()))


def _push_into_driver(combination: exp.Expr, column: str,
                      bounds: tuple[exp.Expr, exp.Expr | None]) -> bool:
    """Add the checkpoint filter on ``<source column>`` to the WHERE of the driving
    query ``q1``.

    Only when that filters exactly the combination's rows: the output column is
    ``q1.<name>``, the other queries are LEFT JOINed to q1 (so q1's rows are
    the output rows), and q1 is a plain SELECT (no GROUP BY, DISTINCT, HAVING,
    window, LIMIT or set operation) in which ``<name>`` is a column.
    """
    if not isinstance(combination, exp.Select) or combination.args.get("where"):
        return False
    source = next((p.this for p in combination.expressions
                   if isinstance(p, exp.Alias) and p.alias == column), None)
    if not (isinstance(source, exp.Column) and source.table == "q1"):
        return False
    if any(j.args.get("side", "").upper() != "LEFT" for j in combination.args.get("joins") or []):
        return False
    start = combination.args.get("from_") or combination.args.get("from")
    driver = start.this if start is not None else None
    if not (isinstance(driver, exp.Subquery) and driver.alias == "q1"
            and isinstance(driver.this, exp.Select)):
        return False
    query = driver.this
    if any(query.args.get(k) for k in ("group", "distinct", "having", "limit", "qualify",
                                       "windows")) or query.find(exp.Window):
        return False
    inner = next((p.this if isinstance(p, exp.Alias) else p for p in query.expressions
                  if p.alias_or_name == source.name), None)
    if not isinstance(inner, exp.Column):
        return False
    query.where(checkpoint_filter(inner, *bounds), copy=False)
    return True
