"""PKGDWPRC: run job flows on the parallel engine, schedule them, stop them.

A job run is a process (DMS_PRCLOG, IP -> PC or FL).  Each combination of
the job flow is one engine run (``dms.run.prcid`` points back at the
process), read in parallel chunks cut on the business key and merged into
the target with SQL; the combinations run one after the other, and the first
that does not fully load ends the process FL with its message.  The process
then writes one DMS_JOBLOG row with exact counts from the engine's chunk
records, the rows the target refused (DMS_JOBERR), and -- only when it
succeeded -- the new checkpoint.

Counts in DMS_JOBLOG:

* SRCROWS: rows read from the sources by the chunks that loaded (each
  combination's rows, summed; a failed chunk's rows are not counted);
* TRGROWS: target rows written -- new rows and new versions inserted, old
  versions expired, rows updated in place (a version the same run created
  and another combination completes is not counted twice);
* ERRROWS: rows the target refused (listed in DMS_JOBERR).

A rerun never duplicates: a DIM merge compares with what the target holds,
and a NRM/FCT/MRT load inserts only keys the target does not hold yet.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dms_pkg.backends.endpoint import DIALECTS
from dms_pkg.engine import booting, stopping
from dms_pkg.engine import config as cfg
from dms_pkg.engine.columns import error_fields
from dms_pkg.engine.coordinator import RunOutcome, coordinate
from dms_pkg.engine.planning import RunRequest, effective_config, plan_run
from dms_pkg.errors import (
    INSUFFICIENT_PRIVILEGE,
    INVALID_PARAMETER_VALUE,
    OBJECT_NOT_IN_PREREQUISITE_STATE,
    DmsError,
)
from dms_pkg.mapper import flow, pkgdwjob, schedule
from dms_pkg.mapper.context import Context, database_type

JOB_FAILED = "P0001"
PARAM_COUNT = flow.PARAM_COUNT
DECIDED_BY_FLOW = "is decided by the job flow"
# Engine settings a job run may not be given, and why: the job flow decides
# them, or they would break what a job promises (every row once, one key in
# one chunk, all combinations as of one moment, one load of a target at once).
FLOW_SETTINGS: dict[str, str] = {
    "merge": DECIDED_BY_FLOW, "key": DECIDED_BY_FLOW, "write_mode": DECIDED_BY_FLOW,
    "checkpoint_column": DECIDED_BY_FLOW, "create_target": DECIDED_BY_FLOW,
    "path": DECIDED_BY_FLOW,
    "snapshot": "is always on for a job run: its chunks and its checkpoint are read as of "
    "one moment",
    "if_busy": "cannot be given to a job run: a job refuses a target another run is loading",
}
# A job's chunks are cut on the business key, so that a key is never split
# over two chunks (merged by two sessions at once); a physical (ctid) cut is not.
KEY_STRATEGIES = ("auto", "key_range", "quantile", "hash", "offset", "single")
RUN_SETTINGS = tuple(sorted(name for name in cfg.SETTINGS if name not in FLOW_SETTINGS))
PARAM_KEYS = ("params", *(f"param{i}" for i in range(1, PARAM_COUNT + 1)))


def _upper(value: str | None) -> str:
    return (value or "").strip().upper()


@dataclass
class Totals:
    srcrows: int = 0
    trgrows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None


# -- running ------------------------------------------------------------------------

def _runnable(ctx: Context, mapref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    job = pkgdwjob.current_job(ctx, mapref)
    if str(job["stflg"]).strip() != "A":
        raise DmsError(f"job {mapref} is not active", sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                       hint=f"SELECT pkgdwmapr.activate_deactivate_mapping('{mapref}', 'A')")
    flows = ctx.rows("SELECT jobflwid, dwlogic FROM dms.dms_jobflw WHERE mapref = $1"
                     " AND curflg = 'Y'", [mapref])
    if not flows:
        raise DmsError(f"job {mapref} has no job flow", sqlstate="42704",
                       hint=f"SELECT pkgdwjob.create_job_flow('{mapref}')")
    _refuse_sql_others_wrote(ctx, mapref)
    return job, flows[0]


# Who wrote the SQL a job runs: its mapping details (MAPLOGIC), the DMS_MAPRSQL
# entries they name, and its generated job flow.
_SQL_WRITERS = """
SELECT w.login FROM (
    SELECT unnest(ARRAY[d.crtdby, d.uptdby]) AS login FROM dms.dms_maprdtl d
     WHERE d.mapref = $1 AND d.curflg = 'Y'
    UNION ALL
    SELECT unnest(ARRAY[s.crtdby, s.uptdby]) FROM dms.dms_maprsql s
     WHERE s.curflg = 'Y' AND s.maprsqlcd IN (
           SELECT upper(btrim(d.maplogic)) FROM dms.dms_maprdtl d
            WHERE d.mapref = $1 AND d.curflg = 'Y')
    UNION ALL
    SELECT unnest(ARRAY[f.crtdby, f.uptdby]) FROM dms.dms_jobflw f
     WHERE f.mapref = $1 AND f.curflg = 'Y') w
 WHERE (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = session_user)
   AND w.login <> session_user
   AND NOT coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r
                      WHERE r.rolname = w.login), false)
 GROUP BY w.login ORDER BY w.login"""


def _refuse_sql_others_wrote(ctx: Context, mapref: str) -> None:
    """A superuser does not run SQL a non-superuser wrote (docs/roles.md): its
    sessions would run it as a superuser, and that SQL could use it."""
    writers = [str(r["login"]) for r in ctx.rows(_SQL_WRITERS, [mapref])]
    if writers:
        raise DmsError(
            f"job {mapref} runs SQL written by {', '.join(writers)}, who "
            f"{'is' if len(writers) == 1 else 'are'} not a superuser: a superuser's "
            "session does not run it",
            sqlstate=INSUFFICIENT_PRIVILEGE,
            detail="nothing was run",
            hint="run the job as a login without SUPERUSER (a dms_operator), or, after "
            "reviewing the SQL, save it again as a superuser (pkgdwmapr, then "
            "pkgdwjob.create_update_job)")


def split_params(p_params: Mapping[str, Any] | None) -> tuple[list[str | None], dict[str, Any]]:
    """``run_job``'s p_params: DWT_PARAM values (``params`` list or ``param1``..``param10``)
    and engine settings (max_workers, chunk_size, ...).  Every key is checked
    here, before anything is written; the settings' values by ``check_settings``."""
    given = dict(p_params or {})
    for name in given:
        if name not in PARAM_KEYS and name not in cfg.SETTINGS:
            close = difflib.get_close_matches(name, [*PARAM_KEYS, *RUN_SETTINGS], n=1)
            raise DmsError(
                f'unknown key "{name}" in p_params'
                + (f'; did you mean "{close[0]}"?' if close else ""),
                sqlstate=INVALID_PARAMETER_VALUE,
                detail="p_params of a job run holds DWT_PARAM values and run settings; "
                "nothing was run",
                hint="known keys: params, param1 .. param10, " + ", ".join(RUN_SETTINGS))
    values: list[str | None] = [None] * PARAM_COUNT
    listed = given.pop("params", None)
    if listed is not None:
        if not isinstance(listed, list) or len(listed) > PARAM_COUNT:
            raise DmsError(f"params must be a list of at most {PARAM_COUNT} values",
                           sqlstate=INVALID_PARAMETER_VALUE,
                           hint="""for example p_params => '{"params": ["2026-01-01"]}'""")
        for i, value in enumerate(listed):
            values[i] = None if value is None else str(value)
    for i in range(1, PARAM_COUNT + 1):
        if f"param{i}" in given:
            value = given.pop(f"param{i}")
            values[i - 1] = None if value is None else str(value)
    for name, why in FLOW_SETTINGS.items():
        if name in given:
            raise DmsError(f"setting {name} {why}" + (
                " and cannot be given to a job run" if why == DECIDED_BY_FLOW else ""),
                sqlstate=INVALID_PARAMETER_VALUE,
                hint="run settings: " + ", ".join(RUN_SETTINGS))
    return values, given


def check_settings(ctx: Context, settings: Mapping[str, Any], chunk_size: int | None) -> None:
    """Every run setting as the engine will take it (DMS_PARAMS and environment
    included), checked before the process is recorded: a bad value is refused
    with nothing written, not logged as a failed process."""
    given = dict(settings)
    if chunk_size and "chunk_size" not in given:
        given["chunk_size"] = int(chunk_size)
    config = effective_config(ctx.db, given)
    if config["strategy"] not in KEY_STRATEGIES:
        raise DmsError(
            f"strategy {config['strategy']} cannot be used by a job run: a job's chunks are "
            "cut on the business key, so that one key is never merged by two chunks",
            sqlstate=INVALID_PARAMETER_VALUE, hint="strategies: " + ", ".join(KEY_STRATEGIES))


def process_job_flow(ctx: Context, mapref: str, params: Sequence[str | None] = (), *,
                     prctyp: str = "REGULAR", settings: Mapping[str, Any] | None = None,
                     truncate: bool = False, use_checkpoint: bool = True) -> int:
    """Run a job: every combination of its flow on the engine; returns the process id.

    Raises (after recording the failure) unless every combination loaded.
    """
    mapref = _upper(mapref)
    job, jobflw = _runnable(ctx, mapref)
    job_flow = flow.parse(str(jobflw["dwlogic"]))
    if truncate and job_flow.target["type"] == "DIM":
        raise DmsError(
            f"job {mapref} loads a dimension: emptying it first would drop its history",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="call process_historical_data with p_tl_flg => 'N' for a DIM")
    check_settings(ctx, settings or {}, job_flow.chunk_size)
    values = [None if p is None else str(p) for p in list(params)[:PARAM_COUNT]]
    started = ctx.write("start_process", jobid=job["jobid"], jobflwid=jobflw["jobflwid"],
                        mapref=mapref, prctyp=prctyp, params=values)
    prcid = int(started["id"])
    ctx.db.commit()  # watchers see the process from now on
    ctx.say(f"process {prcid}: job {mapref} started, {len(job_flow.combinations)} "
            f"combination{'s' if len(job_flow.combinations) != 1 else ''}")
    # The first combination's workers load their code while its run is planned
    # (opened when the call began, when its entry could: head_start).
    booted = ctx.take_booted()
    if booted is None:
        booted = booting.boot(ctx.db, dict(settings or {}))
    status, message = "PC", None
    totals = Totals()
    last = job.get("chkpntval") if use_checkpoint else None
    ceiling: str | None = None
    try:
        for index, combination in enumerate(job_flow.combinations):
            outcome = _run_combination(
                # Only a later combination can meet versions this process wrote.
                ctx, job, job_flow, combination, prcid, values,
                str(started["strtdt"]) if index else None,
                settings or {}, truncate=truncate and index == 0, last=last,
                ceiling=ceiling, use_checkpoint=use_checkpoint, booted=booted)
            booted = []  # taken by the first run, or closed
            if outcome.state != "SUCCEEDED":
                status = "FL"
                message = (f"combination {combination.code or '(default)'}: run "
                           f"{outcome.run_id} {outcome.state}: {outcome.message}")
                break
            if index == 0:
                # The later combinations read no further than the first did,
                # though their snapshots are later: one run loads every
                # combination of the same keys, and a key that arrived in
                # between waits for the next run instead of getting a version
                # with the first combination's columns empty.
                read = _read_up_to(ctx, outcome.run_id)
                ceiling = last if read is None else read
    except Exception as exc:  # recorded as the process's failure, then raised below
        ctx.db.rollback()
        booting.close(ctx.db, booted)
        status = "FL"
        message = exc.message if isinstance(exc, DmsError) else (
            f"{type(exc).__name__}: {error_fields(exc)[1]}")
    _count(ctx, prcid, totals)
    ctx.write("end_process", prcid=prcid, status=status, msg=message,
              srcrows=totals.srcrows, trgrows=totals.trgrows, errrows=len(totals.errors),
              errors=totals.errors,
              checkpoint=totals.checkpoint if use_checkpoint else None)
    ctx.db.commit()
    if status == "PC":
        children = ctx.write("queue_children", mapref=mapref, prcid=prcid)["queued"]
        ctx.db.commit()
        ctx.say(f"process {prcid}: job {mapref} PC, {totals.srcrows} source rows, "
                f"{totals.trgrows} target rows written"
                + (f"; queued child job{'s' if len(children) != 1 else ''} "
                   + ", ".join(children) if children else ""))
        return prcid
    raise DmsError(
        f"job {mapref} failed (process {prcid}): {message}", sqlstate=JOB_FAILED,
        detail=f"SELECT * FROM dms.dms_joberr WHERE prcid = {prcid}; SELECT * FROM "
        f"dms.run_progress WHERE run_id IN (SELECT run_id FROM dms.run WHERE prcid = {prcid})",
        hint="fix the cause and run the job again: rows the failed run committed are found "
        "in the target and not loaded twice")


def _run_combination(ctx: Context, job: Mapping[str, Any], job_flow: flow.JobFlow,
                     combination: flow.Combination, prcid: int, params: list[str | None],
                     since: str | None, settings: Mapping[str, Any], *, truncate: bool,
                     last: str | None, ceiling: str | None, use_checkpoint: bool,
                     booted: list[str] | None = None) -> RunOutcome:
    dialect = DIALECTS.get(database_type(ctx, combination.source_conid), "postgres")
    text = flow.with_params(combination.sql, params, dialect)
    column = job_flow.checkpoint.get("column") if (
        use_checkpoint and job_flow.checkpoint.get("strategy") == "KEY") else None
    text = flow.source_query(text, column, last if column else None, dialect,
                             ceiling=ceiling if column else None)
    engine: dict[str, Any] = {"key": ",".join(job_flow.keys),
                              "merge": merge_spec(job_flow, combination, since)}
    if job_flow.chunk_size:
        engine["chunk_size"] = int(job_flow.chunk_size)
    if column:
        engine["checkpoint_column"] = column
    if truncate:
        engine["write_mode"] = "truncate"
    engine.update(settings)
    target = job_flow.target
    try:
        planned = plan_run(ctx.local, RunRequest(
            text, target["schema"], target["table"], combination.source_conid, target["conid"],
            engine, prcid=prcid, mapcmbcd=combination.code,
            label=f"{job_flow.mapref} {combination.code or ''}".strip()))
        ctx.db.commit()  # the workers must see the run and its chunks
        booted = booting.fit(ctx.db, list(booted or []), planned.workers,
                             queued=planned.queued)
    except BaseException:
        ctx.db.rollback()
        booting.close(ctx.db, list(booted or []))
        raise
    ctx.say(f"process {prcid}: combination {combination.code or '(default)'} is run "
            f"{planned.run_id}, {len(planned.plan.chunks)} chunk"
            f"{'s' if len(planned.plan.chunks) != 1 else ''}, {planned.workers} worker"
            f"{'s' if planned.workers != 1 else ''}")
    return coordinate(ctx.local, planned.run_id, planned.workers, login=ctx.login,
                      notify=ctx.notify, booted=booted)


def _read_up_to(ctx: Context, run_id: int) -> str | None:
    """The highest checkpoint value an engine run read (NULL: none, or no checkpoint)."""
    rows = ctx.rows("SELECT checkpoint_value FROM dms.run WHERE run_id = $1::bigint", [run_id])
    return rows[0]["checkpoint_value"] if rows else None


def merge_spec(job_flow: flow.JobFlow, combination: flow.Combination, since: str | None
               ) -> dict[str, Any]:
    """How a combination's staged chunk goes into the target (see dms_pkg.engine.merge).

    ``since``: when the process started, for a combination after the first; the
    versions written from then on are this process's own (an earlier
    combination's), completed in place rather than versioned again.  The first
    combination meets none -- its chunks hold disjoint keys -- so it passes
    None and its chunks skip the statement that completes them (20-33 ms of a
    97K-row reload chunk that found nothing to do)."""
    common = {"keys": job_flow.keys, "hash_column": "rwhkey", "created_column": "reccrdt",
              "updated_column": "recupdt"}
    if job_flow.target["type"] != "DIM":
        # Keys already in the target are not inserted again: a rerun after a
        # failure that left some chunks committed adds only what is missing.
        return {"kind": "append", "only_new": True, **common}
    others = [c for other in job_flow.combinations if other is not combination
              for c in other.columns]
    return {"kind": "scd", **common, "scd2": combination.scd2, "scd1": combination.scd1,
            "carry": others, "current_column": "curflg", "valid_from_column": "fromdt",
            "valid_to_column": "todt", "since": since}


def _count(ctx: Context, prcid: int, totals: Totals) -> None:
    """The process's counts, from the engine's records of its runs."""
    row = ctx.rows(
        "SELECT coalesce(sum(c.rows) FILTER (WHERE c.state = 'DONE'), 0)::bigint AS srcrows,"
        " coalesce(sum(coalesce((c.stats->>'inserted')::bigint, 0)"
        " + coalesce((c.stats->>'updated')::bigint, 0)"
        " + coalesce((c.stats->>'expired')::bigint, 0)) FILTER (WHERE c.state = 'DONE'),"
        " 0)::bigint AS trgrows"
        " FROM dms.run r JOIN dms.chunk c ON c.run_id = r.run_id WHERE r.prcid = $1::bigint",
        [prcid])[0]
    totals.srcrows = int(row["srcrows"])
    totals.trgrows = int(row["trgrows"])
    totals.errors = [
        {"key": r["key_value"], "sqlstate": r["sqlstate"], "message": r["message"],
         "trgtbnm": r["target_table"], "errtyp": "REJECTED"}
        for r in ctx.rows(
            "SELECT j.key_value, j.sqlstate, j.message, r.target_table FROM dms.run r"
            " JOIN dms.chunk_reject j ON j.run_id = r.run_id WHERE r.prcid = $1::bigint"
            " ORDER BY j.run_id, j.chunk_no, j.seq", [prcid])
    ]
    values = ctx.rows("SELECT checkpoint_value FROM dms.run WHERE prcid = $1::bigint"
                      " AND checkpoint_value IS NOT NULL ORDER BY run_id LIMIT 1", [prcid])
    totals.checkpoint = values[0]["checkpoint_value"] if values else None


def process_historical_data(ctx: Context, mapref: str, strtdt: Any, enddt: Any,
                            tl_flg: str | None, settings: Mapping[str, Any] | None = None
                            ) -> int:
    """Reload a period: DWT_PARAM1 = start date, DWT_PARAM2 = end date.  With
    p_tl_flg 'Y' the target is emptied first (truncate-and-load: it is swapped in
    only when every chunk loaded).  The checkpoint is neither used nor moved."""
    flag = _upper(tl_flg) or "N"
    if flag not in ("Y", "N"):
        raise DmsError(f"p_tl_flg must be Y (empty the target first) or N, got {tl_flg!r}",
                       sqlstate=INVALID_PARAMETER_VALUE)
    if strtdt is None or enddt is None:
        raise DmsError("a historical load needs its period: p_strtdt and p_enddt",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="the job's queries read them as DWT_PARAM1 and DWT_PARAM2")
    # The dates arrive as text in this session's DateStyle (15/01/2026 with
    # DMY): compared by the database, and handed on as ISO 8601, which the
    # worker sessions -- whatever their DateStyle -- read as the same day.
    period = ctx.rows(
        "SELECT pg_catalog.to_jsonb($1::text::date) #>> '{}' AS strtdt,"
        " pg_catalog.to_jsonb($2::text::date) #>> '{}' AS enddt,"
        " $2::text::date < $1::text::date AS reversed", [str(strtdt), str(enddt)])[0]
    if period["reversed"]:
        raise DmsError(f"p_enddt {period['enddt']} is before p_strtdt {period['strtdt']}",
                       sqlstate=INVALID_PARAMETER_VALUE)
    return process_job_flow(ctx, mapref, [period["strtdt"], period["enddt"]],
                            prctyp="HISTORY", settings=settings, truncate=flag == "Y",
                            use_checkpoint=False)


def stop_running_job(ctx: Context, mapref: str) -> str:
    """Stop the job's running process: its engine runs stop (chunks being loaded are
    cancelled and roll back), and the process ends FL."""
    mapref = _upper(mapref)
    processes = ctx.rows("SELECT prcid FROM dms.dms_prclog WHERE mapref = $1 AND status = 'IP'"
                         " ORDER BY prcid", [mapref])
    if not processes:
        return f"job {mapref} is not running"
    stopped = []
    for process in processes:
        runs = ctx.rows("SELECT run_id FROM dms.run WHERE prcid = $1::bigint AND state IN"
                        " ('RUNNING', 'QUEUED')", [process["prcid"]])
        for run in runs:
            stopping.stop_run(ctx.local, int(run["run_id"]), ctx.say)
        result = ctx.write("abandon_process", prcid=process["prcid"],
                           msg=f"stopped by {ctx.login.user if ctx.login else 'a user'}")
        ctx.db.commit()
        stopped.append(f"process {process['prcid']}"
                       + (" (its session had already ended)" if result["abandoned"] else ""))
    return f"job {mapref}: stopped " + ", ".join(stopped)


# -- scheduling ------------------------------------------------------------------------

def zone(ctx: Context) -> str:
    """The time zone schedules are read in: the one sessions start with (the
    database's or role's TimeZone), not a SET in this session -- the
    dispatcher started by pg_cron must see the same wall clock."""
    return str(ctx.rows("SELECT reset_val AS tz FROM pg_catalog.pg_settings"
                        " WHERE name = 'TimeZone'")[0]["tz"])


def _now(ctx: Context) -> datetime:
    value = ctx.rows("SELECT pg_catalog.clock_timestamp()::text AS now")[0]["now"]
    return parse_time(value)


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    if len(text) >= 3 and text[-3] in "+-" and text[-2:].isdigit():
        text += ":00"  # PostgreSQL writes +01 for a whole-hour offset
    return datetime.fromisoformat(text)


def _aware(ctx: Context, value: Any) -> datetime | None:
    """A timestamptz argument, read by PostgreSQL (so any input it accepts works)."""
    if value is None:
        return None
    row = ctx.rows("SELECT ($1::text)::timestamptz::text AS t", [str(value)])
    return parse_time(row[0]["t"])


def create_job_schedule(ctx: Context, mapref: str, frqcd: str | None, frqdd: str | None,
                        frqhh: int | None, frqmi: int | None, strtdt: Any, enddt: Any) -> int:
    mapref = _upper(mapref)
    _, jobflw = _runnable(ctx, mapref)
    now = _now(ctx)
    current = ctx.rows("SELECT dpnd_jobschid, stflg, strtdt::text AS strtdt FROM dms.dms_jobsch"
                       " WHERE mapref = $1 AND curflg = 'Y'", [mapref])
    # Without p_strtdt the schedule keeps its start (so the same call twice is
    # one version, and a fortnightly grid does not move); a new one starts now.
    start = _aware(ctx, strtdt) or (parse_time(current[0]["strtdt"]) if current and current[0][
        "strtdt"] else now)
    plan = schedule.Schedule(_upper(frqcd) or "NA", (frqdd or "").strip().upper() or None,
                             frqhh, frqmi, start, _aware(ctx, enddt))
    nxt = schedule.next_run(plan, now, zone(ctx))
    result = ctx.write(
        "save_schedule", mapref=mapref, jobflwid=jobflw["jobflwid"], frqcd=plan.frqcd,
        frqdd=plan.frqdd, frqhh=frqhh, frqmi=frqmi,
        strtdt=plan.strtdt.isoformat() if plan.strtdt else None,
        enddt=plan.enddt.isoformat() if plan.enddt else None,
        stflg=current[0]["stflg"] if current else "A",
        dpnd_jobschid=current[0]["dpnd_jobschid"] if current else None,
        nxtrundt=nxt.isoformat() if nxt else None)
    ctx.say(f"job {mapref}: schedule {plan.frqcd}, next run "
            + (nxt.isoformat() if nxt else "none (on demand or after its parent)"))
    return int(result["id"])


def _schedule_row(ctx: Context, mapref: str) -> dict[str, Any] | None:
    rows = ctx.rows("SELECT * FROM dms.dms_jobsch WHERE mapref = $1 AND curflg = 'Y'", [mapref])
    return rows[0] if rows else None


def create_job_dependency(ctx: Context, parent_mapref: str, child_mapref: str) -> int:
    """The child runs after each successful run of the parent."""
    parent, child = _upper(parent_mapref), _upper(child_mapref)
    if parent == child:
        raise DmsError(f"job {parent} cannot depend on itself", sqlstate=INVALID_PARAMETER_VALUE)
    for mapref in (parent, child):
        _runnable(ctx, mapref)
        if _schedule_row(ctx, mapref) is None:  # a job without schedule runs on demand
            create_job_schedule(ctx, mapref, "NA", None, None, None, None, None)
    # Walking up from the parent must not reach the child: no cycles.
    seen, current = [parent], parent
    while True:
        rows = ctx.rows("SELECT p.mapref FROM dms.dms_jobsch c JOIN dms.dms_jobsch p"
                        " ON p.jobschid = c.dpnd_jobschid WHERE c.mapref = $1 AND"
                        " c.curflg = 'Y'", [current])
        if not rows:
            break
        current = str(rows[0]["mapref"])
        if current == child or current in seen:
            raise DmsError(
                f"job {child} cannot depend on {parent}: {parent} already runs after "
                + " after ".join([*seen[1:], current]), sqlstate=INVALID_PARAMETER_VALUE,
                hint="dependencies must form a tree; remove the other dependency first")
        seen.append(current)
    parent_row, child_row = _schedule_row(ctx, parent), _schedule_row(ctx, child)
    assert parent_row is not None and child_row is not None
    ctx.write("set_schedule", jobschid=child_row["jobschid"],
              dpnd_jobschid=parent_row["jobschid"])
    return int(child_row["jobschid"])


def enable_disable_schedule(ctx: Context, mapref: str, action: str | None) -> str:
    mapref = _upper(mapref)
    flag = {"E": "A", "ENABLE": "A", "A": "A", "D": "N", "DISABLE": "N", "N": "N"}.get(
        _upper(action))
    if flag is None:
        raise DmsError(f"p_action must be ENABLE (E) or DISABLE (D), got {action!r}",
                       sqlstate=INVALID_PARAMETER_VALUE)
    row = _schedule_row(ctx, mapref)
    if row is None:
        raise DmsError(f"job {mapref} has no schedule", sqlstate="42704",
                       hint="create one with pkgdwprc.create_job_schedule")
    changes: dict[str, Any] = {"stflg": flag}
    if flag == "A":  # runs missed while disabled are not made up: the next is from now
        nxt = schedule.next_run(plan_of(row), _now(ctx), zone(ctx))
        changes["nxtrundt"] = nxt.isoformat() if nxt else None
    ctx.write("set_schedule", jobschid=row["jobschid"], **changes)
    return "ENABLED" if flag == "A" else "DISABLED"


def plan_of(row: Mapping[str, Any]) -> schedule.Schedule:
    return schedule.Schedule(
        str(row["frqcd"]), row.get("frqdd"), row.get("frqhh"), row.get("frqmi"),
        parse_time(row["strtdt"]) if row.get("strtdt") is not None else None,
        parse_time(row["enddt"]) if row.get("enddt") is not None else None)


def next_run_dates(ctx: Context, mapref: str | None, count: int | None) -> list[str]:
    """The next ``count`` (5) run times of the job's current schedule, from now."""
    row = _schedule_row(ctx, _upper(mapref))
    if row is None:
        return []
    return [d.isoformat() for d in schedule.occurrences(
        plan_of(row), _now(ctx), zone(ctx), int(count or 5))]


def schedule_job_immediate(ctx: Context, mapref: str) -> int:
    """Queue a run now; the dispatcher (pg_cron, every minute) or CALL
    pkgdwprc.dispatch() carries it out.  Returns the request id."""
    mapref = _upper(mapref)
    _runnable(ctx, mapref)
    reqid = int(ctx.write("queue_request", mapref=mapref, reqtyp="IMMEDIATE")["id"])
    ctx.say(f"request {reqid}: job {mapref} is queued; CALL pkgdwprc.dispatch() runs it now, "
            "the scheduler within a minute")
    return reqid


# -- the dispatcher ---------------------------------------------------------------

def queue_due(ctx: Context) -> int:
    """Schedules whose next run has come: queue a request and move them on."""
    now = _now(ctx)
    wall = zone(ctx)
    queued = 0
    for row in ctx.rows("SELECT * FROM dms.dms_jobsch WHERE curflg = 'Y' AND stflg = 'A'"
                        " AND nxtrundt <= pg_catalog.clock_timestamp() ORDER BY nxtrundt"):
        try:
            nxt = schedule.next_run(plan_of(row), now, wall)
        except DmsError as exc:  # a schedule that can no longer be computed stops
            ctx.write("stop_schedule", jobschid=row["jobschid"], due=str(row["nxtrundt"]))
            ctx.say(f"schedule of {row['mapref']} disabled: {exc.message}")
            continue
        taken = ctx.write("take_schedule", jobschid=row["jobschid"],
                          due=str(row["nxtrundt"]), nxtrundt=nxt.isoformat() if nxt else None)
        queued += int(taken["queued"])
    ctx.db.commit()
    return queued


def dispatch(ctx: Context, max_requests: int | None = None) -> int:
    """``CALL pkgdwprc.dispatch()``: queue due schedules, then carry out the
    queued requests one after another, each as the login that asked for it.
    Returns how many requests were carried out.

    A request of another login is carried out in a session logged in as that
    login (``dms.run_as_owner``): the dispatcher -- pg_cron's job owner, often
    a superuser -- never runs SQL someone else wrote, it only waits."""
    queue_due(ctx)
    done = 0
    while max_requests is None or done < max_requests:
        request = ctx.write("claim_request")
        ctx.db.commit()
        if not request:
            break
        done += 1
        owner, reqid = str(request["reqby"]), int(request["reqid"])
        if ctx.login is not None and owner == ctx.login.user:
            carry_out_claimed(ctx, request)
            continue
        ctx.say(f"request {reqid}: carried out as {owner}, who asked for it")
        error = ctx.rows("SELECT dms.run_as_owner('request', $1::bigint) AS error",
                         [reqid])[0]["error"]
        ctx.db.commit()
        left = ctx.rows("SELECT status FROM dms.dms_prcreq WHERE reqid = $1::bigint", [reqid])
        if left and left[0]["status"] == "CLAIMED":  # its session ended before it did
            ctx.write("end_request", reqid=reqid, status="FAILED",
                      msg=f"could not be carried out as {owner}: {error or 'the session ended'}",
                      prcid=None)
            ctx.db.commit()
    return done


def carry_out_request(ctx: Context, reqid: int) -> None:
    """``CALL pkgdwprc.carry_out_request(reqid)``: a dispatcher's hand-over, in a
    session of the login that asked for the request."""
    rows = ctx.rows("SELECT reqid, mapref, reqtyp, reqprm::text AS reqprm, reqby"
                    " FROM dms.dms_prcreq WHERE reqid = $1::bigint AND status = 'CLAIMED'",
                    [reqid])
    if not rows:
        raise DmsError(f"request {reqid} is not waiting to be carried out",
                       sqlstate="55000",
                       hint="SELECT reqid, status FROM dms.dms_prcreq shows the requests")
    if ctx.login is None or rows[0]["reqby"] != ctx.login.user:
        raise DmsError(f"request {reqid} belongs to {rows[0]['reqby']}: only its own "
                       "sessions carry it out", sqlstate="42501",
                       hint="CALL pkgdwprc.dispatch() carries it out as its owner")
    carry_out_claimed(ctx, rows[0])


def carry_out_claimed(ctx: Context, request: Mapping[str, Any]) -> None:
    """Carry out a claimed request in this session and record how it ended."""
    prcid, status, message = None, "DONE", None
    try:
        prcid, message = _carry_out(ctx, request)
    except DmsError as exc:
        ctx.db.rollback()
        status, message = "FAILED", exc.message
        prcid = _last_process(ctx, str(request["mapref"]), int(request["reqid"]))
    ctx.write("end_request", reqid=request["reqid"], status=status, msg=message, prcid=prcid)
    ctx.db.commit()


def _carry_out(ctx: Context, request: Mapping[str, Any]) -> tuple[int | None, str]:
    kind = str(request["reqtyp"])
    prm = json.loads(request["reqprm"]) if isinstance(request["reqprm"], str) else (
        request["reqprm"] or {})
    mapref = str(request["mapref"])
    if kind == "STOP":
        return None, stop_running_job(ctx, mapref)
    if kind == "HISTORY":
        prcid = process_historical_data(ctx, mapref, prm.get("strtdt"), prm.get("enddt"),
                                        prm.get("tl_flg"))
    else:
        prm.pop("after_prcid", None)  # the parent run that queued it: a record only
        values, settings = split_params(prm)
        prcid = process_job_flow(ctx, mapref, values, settings=settings,
                                 prctyp="IMMEDIATE" if kind == "IMMEDIATE" else "REGULAR")
    return prcid, f"process {prcid} PC"


def _last_process(ctx: Context, mapref: str, reqid: int) -> int | None:
    """The process a failed request started, if it got that far."""
    rows = ctx.rows("SELECT max(p.prcid) AS prcid FROM dms.dms_prclog p, dms.dms_prcreq r"
                    " WHERE p.mapref = $1 AND r.reqid = $2::bigint AND p.strtdt >= r.clmdt"
                    " AND p.sessionid = pg_catalog.pg_backend_pid()", [mapref, reqid])
    value = rows[0]["prcid"] if rows else None
    return int(value) if value is not None else None
