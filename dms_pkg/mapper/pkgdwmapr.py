"""PKGDWMAPR: define, validate, activate and delete mappings (DMS_MAPRSQL, DMS_MAPR, DMS_MAPRDTL).

Same procedures and parameters as the Oracle package.  ``create_update_*``
refuse bad input with one error listing every problem (nothing is written);
``validate_*`` record what they find in DMS_MAPERR and return it.  A
mapping whose details validate cleanly is marked verified (LGVRFYFLG 'Y'),
and only a verified, active mapping can become a job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dms_pkg.backends.endpoint import DIALECTS
from dms_pkg.chunking.dialects import get_dialect
from dms_pkg.chunking.parse import parse_query
from dms_pkg.engine.columns import error_fields
from dms_pkg.errors import INVALID_PARAMETER_VALUE, OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError
from dms_pkg.mapper import flow, rules
from dms_pkg.mapper.context import Context, database_type
from dms_pkg.mapper.rules import Problem

INVALID = INVALID_PARAMETER_VALUE
DATATYPE_FALLBACK = "DATATYPE"  # DMS_PARAMS.PRTYP of datatype codes for every database type


def _shown(name: Any) -> str:
    """A name for a message; a missing one must not read as Python's None."""
    return str(name) if name else "(no name)"


def _raise(what: str, problems: list[Problem]) -> None:
    if problems:
        raise DmsError(
            f"{what} is not valid: " + "; ".join(p.message for p in problems),
            sqlstate=INVALID,
            detail=f"{len(problems)} problem{'s' if len(problems) > 1 else ''}; nothing was "
            "written",
            hint="correct the values and call again",
        )


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _connection_problem(ctx: Context, conid: int | None, what: str) -> Problem | None:
    if conid is None:
        return None
    if not ctx.rows("SELECT 1 FROM dms.dms_dbcondtls WHERE conid = $1::bigint AND curflg = 'Y'",
                    [conid]):
        return Problem(None, "CONNECTION", f"{what} {conid} does not exist in DMS_DBCONDTLS")
    return None


# -- DMS_MAPRSQL -------------------------------------------------------------------

def create_update_sql(ctx: Context, maprsqlcd: str, maprsql: str, sqlconid: int | None) -> int:
    code = _upper(maprsqlcd)
    problems = [p for p in (rules.name_problem(code, "SQL code (MAPRSQLCD)"),
                            _connection_problem(ctx, sqlconid, "source connection")) if p]
    if not problems:
        problems += _parse_problems(ctx, maprsql, sqlconid, None)
    _raise(f"SQL {_shown(code)}", problems)
    return int(ctx.write("save_sql", maprsqlcd=code, maprsql=maprsql.strip(),
                         sqlconid=sqlconid)["id"])


def resolve(ctx: Context, maplogic: str) -> flow.Query:
    """MAPLOGIC as SQL and connection: a DMS_MAPRSQL code, or SQL on this database."""
    text = (maplogic or "").strip()
    if rules.NAME.fullmatch(text):
        rows = ctx.rows("SELECT maprsql, sqlconid FROM dms.dms_maprsql"
                        " WHERE maprsqlcd = $1 AND curflg = 'Y'", [text.upper()])
        if not rows:
            raise DmsError(f"MAPLOGIC {text} is neither a query nor the code of a DMS_MAPRSQL row",
                           sqlstate=INVALID, hint="create it with pkgdwmapr.create_update_sql")
        return flow.Query(str(rows[0]["maprsql"]), rows[0]["sqlconid"])
    return flow.Query(text, None)


def _dialect(ctx: Context, conid: int | None) -> str:
    return DIALECTS.get(database_type(ctx, conid), "postgres")


def _parse_problems(ctx: Context, sql_text: str, conid: int | None, column: str | None
                    ) -> list[Problem]:
    try:
        parse_query(flow.with_params(sql_text, [], _dialect(ctx, conid)),
                    get_dialect(_dialect(ctx, conid)))
    except DmsError as exc:
        return [Problem(column, "SQL", exc.message)]
    return []


# -- DMS_MAPR ----------------------------------------------------------------------

MAPPING_DEFAULTS = {"frqcd": "NA", "lgvrfyflg": "N", "stflg": "N", "chkpntstrtgy": "NONE",
                    "chkpntenbld": "N"}


def create_update_mapping(ctx: Context, values: Mapping[str, Any]) -> int:
    m = {k: values.get(k) for k in ("mapref", "mapdesc", "trgschm", "trgtbtyp", "trgtbnm",
                                     "frqcd", "srcsystm", "lgvrfyflg", "lgvrfydt", "stflg",
                                     "blkprcrows", "trgconid", "chkpntstrtgy", "chkpntclnm",
                                     "chkpntenbld")}
    for key in ("mapref", "trgtbtyp", "frqcd", "lgvrfyflg", "stflg", "chkpntstrtgy",
                "chkpntenbld"):
        m[key] = _upper(m[key])
    if m["chkpntenbld"] is None and m["chkpntstrtgy"] == "KEY":
        m["chkpntenbld"] = "Y"  # asking for a KEY checkpoint means using it
    for key, default in MAPPING_DEFAULTS.items():
        if m[key] is None:
            m[key] = default
    problems = rules.mapping_problems(m)
    problems += [p for p in (rules.given_verification(m),) if p]
    problem = _connection_problem(ctx, m["trgconid"], "target connection")
    if problem:
        problems.append(problem)
    _raise(f"mapping {_shown(m['mapref'])}", problems)
    return int(ctx.write("save_mapping", **m)["id"])


def _mapping(ctx: Context, mapref: str) -> dict[str, Any]:
    rows = ctx.rows("SELECT * FROM dms.dms_mapr WHERE mapref = $1 AND curflg = 'Y'",
                    [_upper(mapref)])
    if not rows:
        raise DmsError(f"mapping {_upper(mapref)} does not exist", sqlstate="42704",
                       hint="create it with pkgdwmapr.create_update_mapping")
    return rows[0]


# -- DMS_MAPRDTL -------------------------------------------------------------------

def create_update_mapping_detail(ctx: Context, values: Mapping[str, Any]) -> int:
    d = {k: values.get(k) for k in ("mapref", "trgclnm", "trgcldtyp", "trgkeyflg", "trgkeyseq",
                                     "trgcldesc", "maplogic", "keyclnm", "valclnm", "mapcmbcd",
                                     "excseq", "scdtyp", "lgvrfyflg", "lgvrfydt")}
    for key in ("mapref", "trgclnm", "trgcldtyp", "trgkeyflg", "mapcmbcd", "lgvrfyflg"):
        d[key] = _upper(d[key])
    d["trgkeyflg"] = d["trgkeyflg"] or "N"
    d["lgvrfyflg"] = d["lgvrfyflg"] or "N"
    d["scdtyp"] = 1 if d["scdtyp"] is None else d["scdtyp"]
    mapping = _mapping(ctx, str(d["mapref"] or ""))
    problems = rules.detail_problems(d)
    problems += [p for p in (rules.given_verification(d, d["trgclnm"]),) if p]
    if not problems:
        problems += _datatype_problems(ctx, mapping, [d])
        problems += _logic_problems(ctx, d, explain=False)
    _raise(f"mapping detail {_shown(d['mapref'])}.{_shown(d['trgclnm'])}", problems)
    return int(ctx.write("save_detail", **d)["id"])


def _details(ctx: Context, mapref: str) -> list[dict[str, Any]]:
    return ctx.rows("SELECT * FROM dms.dms_maprdtl WHERE mapref = $1 AND curflg = 'Y'"
                    " ORDER BY excseq NULLS LAST, trgclnm", [_upper(mapref)])


def datatype_codes(ctx: Context, dbtyp: str) -> dict[str, str]:
    """Datatype code -> SQL type for database type ``dbtyp``: its own DMS_PARAMS
    rows, and the DATATYPE rows it does not override."""
    return {str(r["prcd"]).upper(): str(r["prval"]) for r in ctx.rows(
        "SELECT prcd, prval FROM dms.dms_params WHERE prtyp = $1"
        " UNION ALL SELECT p.prcd, p.prval FROM dms.dms_params p WHERE p.prtyp = $2"
        " AND NOT EXISTS (SELECT FROM dms.dms_params q WHERE q.prtyp = $1 AND q.prcd = p.prcd)",
        [dbtyp, DATATYPE_FALLBACK])}


def _datatype_problems(ctx: Context, mapping: Mapping[str, Any],
                       details: list[dict[str, Any]]) -> list[Problem]:
    dbtyp = database_type(ctx, mapping.get("trgconid"))
    known = datatype_codes(ctx, dbtyp)
    return [
        Problem(d["trgclnm"], "DATATYPE",
                f"column {d['trgclnm']}: datatype code {d['trgcldtyp']} has no DMS_PARAMS row "
                f"for {dbtyp} (PRTYP '{dbtyp}', PRCD '{d['trgcldtyp']}')")
        for d in details if str(d.get("trgcldtyp") or "").upper() not in known
    ]


def _logic_problems(ctx: Context, d: Mapping[str, Any], *, explain: bool) -> list[Problem]:
    column = d.get("trgclnm")
    try:
        query = resolve(ctx, str(d.get("maplogic") or ""))
    except DmsError as exc:
        return [Problem(column, "LOGIC", exc.message)]
    problems = _parse_problems(ctx, query.sql, query.conid, column)
    if problems or not explain:
        return problems
    message = explain_logic(ctx, query, keys=flow_keys(d), value=d.get("valclnm"))
    return [] if message is None else [Problem(column, "LOGIC", f"column {column}: {message}")]


def flow_keys(d: Mapping[str, Any]) -> list[str]:
    if d.get("trgkeyflg") == "Y":
        return [str(d.get("valclnm") or d.get("keyclnm"))]
    return flow.split_keys(str(d.get("keyclnm") or ""))


def explain_logic(ctx: Context, query: flow.Query, keys: list[str] | None = None,
                  value: str | None = None) -> str | None:
    """Run EXPLAIN (and a zero-row probe of the columns) on the query's connection,
    DWT_PARAM1..10 replaced by NULL; None when it works, else what is wrong."""
    dialect = _dialect(ctx, query.conid)
    text = flow.with_params(query.sql, [], dialect)
    try:
        with ctx.planning_on(query.conid) as planning:
            names = {c.name for c in planning.describe(text)}
    except DmsError as exc:
        return exc.message
    except Exception as exc:  # the database's own words: what the DBA must fix
        return f"the query fails on its connection: {error_fields(exc)[1]}"
    wanted = list(dict.fromkeys([*(keys or []), *([value] if value else [])]))  # once each
    missing = [c for c in wanted if c.lower() not in {n.lower() for n in names}]
    if missing:
        return ("the query returns no column " + ", ".join(missing)
                + " (it returns " + ", ".join(sorted(names)) + ")")
    return None


# -- validation ----------------------------------------------------------------------

def validate_sql(ctx: Context, maprsqlcd: str) -> str:
    rows = ctx.rows("SELECT maprsql, sqlconid FROM dms.dms_maprsql WHERE maprsqlcd = $1"
                    " AND curflg = 'Y'", [_upper(maprsqlcd)])
    if not rows:
        return f"SQL code {_upper(maprsqlcd)} does not exist in DMS_MAPRSQL"
    query = flow.Query(str(rows[0]["maprsql"]), rows[0]["sqlconid"])
    problems = _parse_problems(ctx, query.sql, query.conid, None)
    if problems:
        return problems[0].message
    return explain_logic(ctx, query) or "Y"


def validate_logic(ctx: Context, maplogic: str, keyclnm: str | None = None,
                   valclnm: str | None = None) -> str:
    try:
        query = resolve(ctx, maplogic)
    except DmsError as exc:
        return exc.message
    problems = _parse_problems(ctx, query.sql, query.conid, None)
    if problems:
        return problems[0].message
    keys = flow.split_keys(keyclnm)
    return explain_logic(ctx, query, keys, valclnm) or "Y"


def validate_mapping_details(ctx: Context, mapref: str) -> list[Problem]:
    """Every rule, EXPLAIN included; records the outcome in DMS_MAPERR and LGVRFYFLG."""
    mapping = _mapping(ctx, mapref)
    details = _details(ctx, mapref)
    problems = rules.mapping_problems(mapping)
    if not details:
        problems.append(Problem(None, "DETAIL", f"mapping {mapping['mapref']} has no columns "
                                "(DMS_MAPRDTL)"))
    for d in details:
        problems += rules.detail_problems(d)
    if details:  # with no column at all, "no key column" would only repeat it
        problems += rules.details_problems(details)
    problems += rules.combination_problems(mapping, details)
    problems += _datatype_problems(ctx, mapping, details)
    for d in details:
        problems += _logic_problems(ctx, d, explain=True)
    if not problems:
        problems += _flow_problems(ctx, mapping, details)
    ctx.write("record_errors", mapref=mapping["mapref"],
              problems=[p.__dict__ for p in problems])
    ctx.write("set_verified", mapref=mapping["mapref"], verified=not problems)
    return problems


def _flow_problems(ctx: Context, mapping: Mapping[str, Any], details: list[dict[str, Any]]
                   ) -> list[Problem]:
    """The combinations can be built (one connection each, key columns that join)."""
    try:
        flow.build({**mapping, "jobid": 0}, details, lambda m: resolve(ctx, m))
    except DmsError as exc:
        return [Problem(None, "COMBINATION", exc.message)]
    return []


# -- status, deletion -----------------------------------------------------------------

def activate_deactivate_mapping(ctx: Context, mapref: str, stflg: str) -> str:
    mapping = _mapping(ctx, mapref)
    flag = _upper(stflg)
    if flag not in rules.STATUS_FLAGS:
        raise DmsError(f"status must be A (active) or N (inactive), got {stflg!r}",
                       sqlstate=INVALID)
    if flag == "A" and str(mapping["lgvrfyflg"]).strip() != "Y":
        raise DmsError(
            f"mapping {mapping['mapref']} cannot be activated: its logic is not verified",
            sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
            hint=f"SELECT * FROM pkgdwmapr.validate_mapping_details('{mapping['mapref']}') "
            "must return no problem first",
        )
    ctx.write("set_status", mapref=mapping["mapref"], stflg=flag)
    return str(flag)


def delete_mapping(ctx: Context, mapref: str) -> int:
    mapping = _mapping(ctx, mapref)
    running = ctx.rows("SELECT prcid FROM dms.dms_prclog WHERE mapref = $1 AND status = 'IP'",
                       [mapping["mapref"]])
    if running:
        raise DmsError(f"mapping {mapping['mapref']} is running (process {running[0]['prcid']})",
                       sqlstate="55006", hint="stop it with pkgdwprc.stop_running_job first")
    return int(ctx.write("delete_mapping", mapref=mapping["mapref"])["closed"])


def delete_mapping_details(ctx: Context, mapref: str, trgclnm: str | None = None) -> int:
    mapping = _mapping(ctx, mapref)
    closed = int(ctx.write("delete_details", mapref=mapping["mapref"],
                           trgclnm=_upper(trgclnm))["closed"])
    if trgclnm and not closed:
        raise DmsError(f"mapping {mapping['mapref']} has no column {_upper(trgclnm)}",
                       sqlstate="42703")
    return closed
