"""Every write of the mapper packages to the DMS tables, behind one door.

The package functions run as their caller -- they EXPLAIN the caller's
queries, create the caller's target tables and load them with the caller's
privileges -- and callers have no INSERT or UPDATE on the DMS tables.  Their
writes go through ``dms._write(op, args)``, a SECURITY DEFINER function that
checks the caller's role for the operation and runs one of the operations
below, nothing else.  Table and column names here are constants of this
module, never caller input; values are always bound.

Definitions are historised with CURFLG: a change closes the current row
(CURFLG 'N') and adds a new current one; an unchanged definition writes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import sql

from dms_pkg.db.base import Database
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
from dms_pkg.security import ADMIN, OPERATOR, require_role

Args = Mapping[str, Any]


def _q(composable: sql.Composable) -> str:
    return composable.as_string(None)


_TYPES: dict[str, dict[str, str]] = {}


def column_types(db: Database, table: str) -> dict[str, str]:
    """Column name -> SQL type of a DMS table (values arrive as JSON, so every
    bind is cast to its column's type)."""
    if table not in _TYPES:
        _TYPES[table] = {
            r["name"]: r["type"] for r in db.query(
                "SELECT a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod)"
                " AS type FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass"
                " AND a.attnum > 0 AND NOT a.attisdropped", [f"dms.{table}"])
        }
    return _TYPES[table]


def _binds(types: Mapping[str, str], names: Sequence[str], start: int) -> list[sql.Composable]:
    return [sql.SQL("${}::{}").format(sql.SQL(str(i)), sql.SQL(types[n]))
            for i, n in enumerate(names, start=start)]


def historise(db: Database, table: str, id_column: str, keys: Mapping[str, Any],
              values: Mapping[str, Any]) -> tuple[int, bool]:
    """Make ``values`` the current row for ``keys``; (row id, whether anything changed).

    The comparison with the current row is done in SQL (IS NOT DISTINCT FROM,
    each bind cast to its column's type), so types and padding compare as the
    database compares them.
    """
    types = column_types(db, table)
    name = sql.Identifier("dms", table)
    key_names, value_names = list(keys), list(values)
    where = sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), b)
        for k, b in zip(key_names, _binds(types, key_names, 1), strict=True))
    same = sql.SQL("({}) IS NOT DISTINCT FROM ({})").format(
        sql.SQL(", ").join(sql.Identifier(v) for v in value_names),
        sql.SQL(", ").join(_binds(types, value_names, len(key_names) + 1)))
    rows = db.query(_q(sql.SQL(
        "SELECT {} AS id, {} AS same FROM {} WHERE {} AND curflg = 'Y' FOR UPDATE").format(
            sql.Identifier(id_column), same, name, where)),
        [*keys.values(), *values.values()])
    if rows and rows[0]["same"]:
        return int(rows[0]["id"]), False
    if rows:
        db.query(_q(sql.SQL(
            "UPDATE {} SET curflg = 'N', recupdt = now(), uptdby = session_user WHERE {} = $1"
        ).format(name, sql.Identifier(id_column))), [rows[0]["id"]])
    columns = [*key_names, *value_names]
    inserted = db.query(_q(sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        name, sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.SQL(", ").join(_binds(types, columns, 1)), sql.Identifier(id_column))),
        [*keys.values(), *values.values()])
    return int(inserted[0][id_column]), True


def _fields(args: Args, names: Sequence[str]) -> dict[str, Any]:
    return {n: args.get(n) for n in names}


MAPRSQL_FIELDS = ("maprsql", "sqlconid")
# LGVRFYFLG / LGVRFYDT are not among them: only validation sets them; an
# unchanged definition keeps its verification, a changed one starts unverified.
MAPR_FIELDS = ("mapdesc", "trgschm", "trgtbtyp", "trgtbnm", "frqcd", "srcsystm", "stflg",
               "blkprcrows", "trgconid", "chkpntstrtgy", "chkpntclnm", "chkpntenbld")
MAPRDTL_FIELDS = ("trgcldtyp", "trgkeyflg", "trgkeyseq", "trgcldesc", "maplogic", "keyclnm",
                  "valclnm", "mapcmbcd", "excseq", "scdtyp")
JOB_FIELDS = ("mapid", "frqcd", "trgschm", "trgtbtyp", "trgtbnm", "srcsystm", "stflg",
              "blkprcrows", "trgconid", "chkpntstrtgy", "chkpntclnm", "chkpntenbld")
JOBDTL_FIELDS = ("mapdtlid", "trgcldtyp", "trgkeyflg", "trgkeyseq", "trgcldesc", "maplogic",
                 "keyclnm", "valclnm", "mapcmbcd", "excseq", "scdtyp")
SCHEDULE_FIELDS = ("jobflwid", "frqcd", "frqdd", "frqhh", "frqmi", "strtdt", "enddt", "stflg",
                   "dpnd_jobschid", "nxtrundt")


# -- PKGDWMAPR --------------------------------------------------------------------

def save_sql(db: Database, args: Args) -> dict[str, Any]:
    row_id, changed = historise(db, "dms_maprsql", "maprsqlid",
                                {"maprsqlcd": args["maprsqlcd"]}, _fields(args, MAPRSQL_FIELDS))
    return {"id": row_id, "changed": changed}


def save_mapping(db: Database, args: Args) -> dict[str, Any]:
    row_id, changed = historise(db, "dms_mapr", "mapid", {"mapref": args["mapref"]},
                                _fields(args, MAPR_FIELDS))
    return {"id": row_id, "changed": changed}


def save_detail(db: Database, args: Args) -> dict[str, Any]:
    row_id, changed = historise(db, "dms_maprdtl", "mapdtlid",
                                {"mapref": args["mapref"], "trgclnm": args["trgclnm"]},
                                _fields(args, MAPRDTL_FIELDS))
    if changed:  # a changed detail must be verified again
        db.query("UPDATE dms.dms_mapr SET lgvrfyflg = 'N', lgvrfydt = NULL, recupdt = now(),"
                 " uptdby = session_user WHERE mapref = $1 AND curflg = 'Y'", [args["mapref"]])
    return {"id": row_id, "changed": changed}


def set_verified(db: Database, args: Args) -> dict[str, Any]:
    flag = "Y" if args.get("verified") else "N"
    for table in ("dms_mapr", "dms_maprdtl"):
        db.query(_q(sql.SQL(
            "UPDATE {} SET lgvrfyflg = $1, lgvrfydt = CASE WHEN $1 = 'Y' THEN now() END,"
            " recupdt = now(), uptdby = session_user WHERE mapref = $2 AND curflg = 'Y'"
        ).format(sql.Identifier("dms", table))), [flag, args["mapref"]])
    return {"verified": flag}


def set_status(db: Database, args: Args) -> dict[str, Any]:
    for table in ("dms_mapr", "dms_job"):
        db.query(_q(sql.SQL(
            "UPDATE {} SET stflg = $1, recupdt = now(), uptdby = session_user"
            " WHERE mapref = $2 AND curflg = 'Y'").format(sql.Identifier("dms", table))),
            [args["stflg"], args["mapref"]])
    return {"stflg": args["stflg"]}


def delete_mapping(db: Database, args: Args) -> dict[str, Any]:
    """Close the mapping and everything made from it; history stays."""
    closed = 0
    for table in ("dms_maprdtl", "dms_jobdtl", "dms_jobsch", "dms_jobflw", "dms_job",
                  "dms_mapr"):
        closed += len(db.query(_q(sql.SQL(
            "UPDATE {} SET curflg = 'N', recupdt = now(), uptdby = session_user"
            " WHERE mapref = $1 AND curflg = 'Y' RETURNING 1").format(
                sql.Identifier("dms", table))), [args["mapref"]]))
    return {"closed": closed}


def delete_details(db: Database, args: Args) -> dict[str, Any]:
    rows = db.query(
        "UPDATE dms.dms_maprdtl SET curflg = 'N', recupdt = now(), uptdby = session_user"
        " WHERE mapref = $1 AND curflg = 'Y' AND ($2::text IS NULL OR upper(trgclnm) = upper($2))"
        " RETURNING 1", [args["mapref"], args.get("trgclnm")])
    if rows:
        db.query("UPDATE dms.dms_mapr SET lgvrfyflg = 'N', lgvrfydt = NULL, recupdt = now()"
                 " WHERE mapref = $1 AND curflg = 'Y'", [args["mapref"]])
    return {"closed": len(rows)}


def record_errors(db: Database, args: Args) -> dict[str, Any]:
    """A validation's problems replace the mapping's earlier ones in DMS_MAPERR."""
    db.query("DELETE FROM dms.dms_maperr WHERE mapref = $1", [args["mapref"]])
    for problem in args.get("problems") or []:
        db.query("INSERT INTO dms.dms_maperr (mapref, trgclnm, errtyp, errmsg)"
                 " VALUES ($1, $2, $3, $4)",
                 [args["mapref"], problem.get("column"), problem["kind"], problem["message"]])
    return {"recorded": len(args.get("problems") or [])}


# -- PKGDWJOB ----------------------------------------------------------------------

def save_job(db: Database, args: Args) -> dict[str, Any]:
    """Copy the current mapping and its details into DMS_JOB / DMS_JOBDTL (historised)."""
    mapref = args["mapref"]
    mapping = db.query("SELECT * FROM dms.dms_mapr WHERE mapref = $1 AND curflg = 'Y'", [mapref])
    if not mapping:
        raise DmsError(f"mapping {mapref} does not exist", sqlstate="42704")
    values = {"mapid": mapping[0]["mapid"], **_fields(mapping[0], JOB_FIELDS[1:])}
    jobid, changed = historise(db, "dms_job", "jobid", {"mapref": mapref}, values)
    if changed:
        # The checkpoint of the job's previous version carries over -- when it
        # is a value of the same column.  Another column's value would filter
        # the new one (pay_id 50600 read as a batch number skips every batch),
        # so a new checkpoint column starts from nothing: a full read, in which
        # the loads insert no key twice.
        db.query("UPDATE dms.dms_job n SET chkpntval = (SELECT j.chkpntval FROM dms.dms_job j"
                 " WHERE j.mapref = $1 AND j.curflg = 'N' ORDER BY j.jobid DESC LIMIT 1)"
                 " WHERE n.jobid = $2 AND (SELECT upper(j.chkpntclnm) FROM dms.dms_job j"
                 " WHERE j.mapref = $1 AND j.curflg = 'N' ORDER BY j.jobid DESC LIMIT 1)"
                 " = upper(n.chkpntclnm)", [mapref, jobid])
    details = db.query("SELECT * FROM dms.dms_maprdtl WHERE mapref = $1 AND curflg = 'Y'",
                       [mapref])
    kept = set()
    for d in details:
        values = {"jobid": jobid, "mapdtlid": d["mapdtlid"], **_fields(d, JOBDTL_FIELDS[1:])}
        _, detail_changed = historise(db, "dms_jobdtl", "jobdtlid",
                                      {"mapref": mapref, "trgclnm": d["trgclnm"]}, values)
        changed |= detail_changed
        kept.add(d["trgclnm"])
    gone = db.query("UPDATE dms.dms_jobdtl SET curflg = 'N', recupdt = now()"
                    " WHERE mapref = $1 AND curflg = 'Y' AND NOT (trgclnm = ANY ($2::text[]))"
                    " RETURNING 1", [mapref, sorted(kept)])
    return {"id": jobid, "changed": changed or bool(gone)}


def save_job_flow(db: Database, args: Args) -> dict[str, Any]:
    job = db.query("SELECT * FROM dms.dms_job WHERE mapref = $1 AND curflg = 'Y'",
                   [args["mapref"]])[0]
    row_id, changed = historise(
        db, "dms_jobflw", "jobflwid", {"mapref": args["mapref"]},
        {"jobid": job["jobid"], "trgschm": job["trgschm"], "trgtbtyp": job["trgtbtyp"],
         "trgtbnm": job["trgtbnm"], "dwlogic": args["dwlogic"], "stflg": job["stflg"]})
    return {"id": row_id, "changed": changed}


# -- PKGDWPRC ----------------------------------------------------------------------

# Whether the session that started process ``p`` is still there (a backend
# started after the process with a reused pid does not count).
_ALIVE = ("EXISTS (SELECT FROM pg_catalog.pg_stat_activity a WHERE a.pid = p.sessionid"
          " AND a.backend_start <= p.strtdt)")


def start_process(db: Database, args: Args) -> dict[str, Any]:
    """A new IP process, unless the job is running already.  A process left IP
    by a session that is gone (a crash, a killed backend) is closed FL first."""
    mapref = args["mapref"]
    db.query("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dms_job:' || $1))",
             [mapref])
    running = db.query(
        f"SELECT p.prcid, p.strtdt::text AS strtdt, {_ALIVE} AS alive"
        " FROM dms.dms_prclog p WHERE p.mapref = $1 AND p.status = 'IP' ORDER BY p.prcid",
        [mapref])
    for process in running:
        if process["alive"]:
            raise DmsError(
                f"job {mapref} is already running (process {process['prcid']}, started "
                f"{process['strtdt']})", sqlstate="55006",
                hint=f"wait for it, or stop it with CALL pkgdwprc.stop_running_job('{mapref}')")
        _close_abandoned(db, int(process["prcid"]),
                         "abandoned: the session running it ended before it finished")
    params = list(args.get("params") or []) + [None] * 10
    row = db.query(
        "INSERT INTO dms.dms_prclog (jobid, jobflwid, mapref, prctyp, status, param1, param2,"
        " param3, param4, param5, param6, param7, param8, param9, param10)"
        " VALUES ($1, $2, $3, $4, 'IP', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        # strtdt as JSON text (ISO 8601): it goes into merge statements that
        # worker sessions read, whose DateStyle may not be the caller's.
        " RETURNING prcid, pg_catalog.to_jsonb(strtdt) #>> '{}' AS strtdt",
        [args["jobid"], args["jobflwid"], mapref, args.get("prctyp") or "REGULAR",
         *[None if p is None else str(p) for p in params[:10]]])
    return {"id": int(row[0]["prcid"]), "strtdt": row[0]["strtdt"]}


def _close_abandoned(db: Database, prcid: int, message: str) -> None:
    db.query("UPDATE dms.dms_prclog SET status = 'FL', msg = $2, enddt = now(), recupdt = now()"
             " WHERE prcid = $1 AND status = 'IP'", [prcid, message])
    db.query("INSERT INTO dms.dms_joblog (prcid, jobid, mapref, strtdt, enddt, status, msg)"
             " SELECT prcid, jobid, mapref, strtdt, now(), 'FL', $2 FROM dms.dms_prclog"
             " WHERE prcid = $1", [prcid, message])


def abandon_process(db: Database, args: Args) -> dict[str, Any]:
    """After a stop: close the process if its own session did not (it is gone)."""
    rows = db.query(
        f"SELECT {_ALIVE} AS alive, p.status FROM dms.dms_prclog p WHERE p.prcid = $1",
        [args["prcid"]])
    if rows and rows[0]["status"] == "IP" and not rows[0]["alive"]:
        _close_abandoned(db, int(args["prcid"]), str(args.get("msg") or "stopped"))
        return {"abandoned": True}
    return {"abandoned": False}


def end_process(db: Database, args: Args) -> dict[str, Any]:
    """The run's summary: DMS_PRCLOG's outcome, one DMS_JOBLOG row, the refused rows."""
    prcid = args["prcid"]
    db.query("UPDATE dms.dms_prclog SET status = $2, msg = $3, enddt = now(), recupdt = now()"
             " WHERE prcid = $1", [prcid, args["status"], args.get("msg")])
    log = db.query("SELECT jobid, mapref, strtdt FROM dms.dms_prclog WHERE prcid = $1",
                   [prcid])[0]
    db.query("INSERT INTO dms.dms_joblog (prcid, jobid, mapref, srcrows, trgrows, errrows, strtdt,"
             " enddt, status, msg) VALUES ($1, $2, $3, $4, $5, $6, $7::timestamptz, now(), $8, $9)",
             [prcid, log["jobid"], log["mapref"], int(args.get("srcrows") or 0),
              int(args.get("trgrows") or 0), int(args.get("errrows") or 0), log["strtdt"],
              args["status"], args.get("msg")])
    for error in args.get("errors") or []:
        db.query("INSERT INTO dms.dms_joberr (prcid, jobid, mapref, trgtbnm, keyvalue, errtyp,"
                 " sqlstate, dberrmsg) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                 [prcid, log["jobid"], log["mapref"], error.get("trgtbnm"), error.get("key"),
                  error.get("errtyp") or "REJECTED", error.get("sqlstate"), error["message"]])
    if args.get("checkpoint") is not None and args["status"] == "PC":
        db.query("UPDATE dms.dms_job SET chkpntval = $2, recupdt = now()"
                 " WHERE jobid = $1", [log["jobid"], args["checkpoint"]])
    return {"id": prcid}


def save_schedule(db: Database, args: Args) -> dict[str, Any]:
    row_id, changed = historise(db, "dms_jobsch", "jobschid", {"mapref": args["mapref"]},
                                _fields(args, SCHEDULE_FIELDS))
    return {"id": row_id, "changed": changed}


def set_schedule(db: Database, args: Args) -> dict[str, Any]:
    """In-place changes of the current schedule: status, dependency (administrators)."""
    return _update_schedule(db, args, ("stflg", "dpnd_jobschid", "nxtrundt"))


def _update_schedule(db: Database, args: Args, allowed: Sequence[str]) -> dict[str, Any]:
    sets = {k: args[k] for k in allowed if k in args}
    if not sets:
        return {"updated": 0}
    types = column_types(db, "dms_jobsch")
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), b)
        for k, b in zip(sets, _binds(types, list(sets), 2), strict=True))
    rows = db.query(_q(sql.SQL(
        "UPDATE dms.dms_jobsch SET {}, recupdt = now() WHERE jobschid = $1 RETURNING 1"
    ).format(assignments)), [args["jobschid"], *sets.values()])
    return {"updated": len(rows)}


def queue_request(db: Database, args: Args) -> dict[str, Any]:
    row = db.query("INSERT INTO dms.dms_prcreq (mapref, reqtyp, reqprm) VALUES ($1, $2, $3::jsonb)"
                   " RETURNING reqid", [args["mapref"], args["reqtyp"],
                                        json.dumps(args.get("reqprm") or {})])
    return {"id": int(row[0]["reqid"])}


def queue_children(db: Database, args: Args) -> dict[str, Any]:
    """After a successful run: a request for each active job that depends on it,
    on behalf of whoever last set up the child's schedule."""
    rows = db.query(
        "INSERT INTO dms.dms_prcreq (mapref, reqtyp, reqprm, reqby)"
        " SELECT c.mapref, 'SCHEDULED', pg_catalog.jsonb_build_object('after_prcid', $2::bigint),"
        " c.uptdby FROM dms.dms_jobsch c JOIN dms.dms_jobsch p ON p.jobschid = c.dpnd_jobschid"
        " WHERE p.mapref = $1 AND c.curflg = 'Y' AND c.stflg = 'A' ORDER BY c.mapref"
        " RETURNING mapref", [args["mapref"], args["prcid"]])
    return {"queued": [r["mapref"] for r in rows]}


def take_schedule(db: Database, args: Args) -> dict[str, Any]:
    """A due schedule: move it on and queue its run -- once, even with two
    dispatchers (the update only matches while NXTRUNDT is still the due time)."""
    rows = db.query(
        "UPDATE dms.dms_jobsch SET lstrundt = pg_catalog.clock_timestamp(),"
        " nxtrundt = $3::timestamptz, recupdt = now() WHERE jobschid = $1"
        " AND nxtrundt = $2::timestamptz AND curflg = 'Y' RETURNING mapref, uptdby",
        [args["jobschid"], args["due"], args.get("nxtrundt")])
    if not rows:
        return {"queued": 0}
    db.query("INSERT INTO dms.dms_prcreq (mapref, reqtyp, reqby) VALUES ($1, 'SCHEDULED', $2)",
             [rows[0]["mapref"], rows[0]["uptdby"]])
    return {"queued": 1}


def stop_schedule(db: Database, args: Args) -> dict[str, Any]:
    """The dispatcher disables a due schedule it can no longer compute (operators:
    the dispatcher runs with the operator role, set_schedule is for admins)."""
    rows = db.query("UPDATE dms.dms_jobsch SET stflg = 'N', nxtrundt = NULL, recupdt = now()"
                    " WHERE jobschid = $1 AND nxtrundt = $2::timestamptz AND curflg = 'Y'"
                    " RETURNING 1", [args["jobschid"], args["due"]])
    return {"updated": len(rows)}


def claim_request(db: Database, args: Args) -> dict[str, Any]:
    rows = db.query(
        "UPDATE dms.dms_prcreq r SET status = 'CLAIMED', clmdt = now()"
        " WHERE r.reqid = (SELECT q.reqid FROM dms.dms_prcreq q WHERE q.status = 'NEW'"
        " ORDER BY q.reqdt, q.reqid LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING r.reqid, r.mapref, r.reqtyp, r.reqprm::text AS reqprm, r.reqby")
    return dict(rows[0]) if rows else {}


def end_request(db: Database, args: Args) -> dict[str, Any]:
    db.query("UPDATE dms.dms_prcreq SET status = $2, msg = $3, prcid = $4, cmpldt = now()"
             " WHERE reqid = $1", [args["reqid"], args["status"], args.get("msg"),
                                   args.get("prcid")])
    return {"id": args["reqid"]}


OPERATIONS: dict[str, tuple[str, Callable[[Database, Args], dict[str, Any]]]] = {
    "save_sql": (ADMIN, save_sql),
    "save_mapping": (ADMIN, save_mapping),
    "save_detail": (ADMIN, save_detail),
    "set_verified": (ADMIN, set_verified),
    "set_status": (ADMIN, set_status),
    "delete_mapping": (ADMIN, delete_mapping),
    "delete_details": (ADMIN, delete_details),
    "record_errors": (ADMIN, record_errors),
    "save_job": (ADMIN, save_job),
    "save_job_flow": (ADMIN, save_job_flow),
    "save_schedule": (ADMIN, save_schedule),
    "set_schedule": (ADMIN, set_schedule),
    "start_process": (OPERATOR, start_process),
    "abandon_process": (OPERATOR, abandon_process),
    "queue_children": (OPERATOR, queue_children),
    "take_schedule": (OPERATOR, take_schedule),
    "stop_schedule": (OPERATOR, stop_schedule),
    "end_process": (OPERATOR, end_process),
    "queue_request": (OPERATOR, queue_request),
    "claim_request": (OPERATOR, claim_request),
    "end_request": (OPERATOR, end_request),
}


def perform(db: Database, op: str, args: Args) -> dict[str, Any]:
    """The body of ``dms._write``: the caller's role first, then the operation."""
    if op not in OPERATIONS:
        raise DmsError(f"unknown write operation {op!r}", sqlstate=INVALID_PARAMETER_VALUE)
    role, operation = OPERATIONS[op]
    require_role(db, role)
    return operation(db, args)
