"""The mapper packages seen from SQL: one table of entry points.

Every ``pkgdwmapr.*``, ``pkgdwjob.*`` and ``pkgdwprc.*`` function and
procedure has the same PL/Python body (``plpy/mapper.py``), which calls
``call(plpy, entry, args)`` with its own name and its ``p_`` arguments.  The
table below says which role the caller needs and what runs; the role is
checked before anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from dms_pkg.mapper import pkgdwjob, pkgdwmapr, pkgdwprc, schedule
from dms_pkg.mapper.context import Context
from dms_pkg.security import ADMIN, OPERATOR, VIEWER

Args = Mapping[str, Any]
Entry = Callable[[Context, Args], Any]


def _jsonb(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    parsed = json.loads(value) if isinstance(value, str) else value
    if not isinstance(parsed, dict):
        from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError
        raise DmsError(f"p_params must be a JSON object, got {type(parsed).__name__}",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="""for example p_params => '{"max_workers": 4}'""")
    return parsed


def _mapping(a: Args) -> dict[str, Any]:
    return {k[2:]: v for k, v in a.items()}


def _problems(ctx: Context, a: Args) -> list[dict[str, Any]]:
    return [{"trgclnm": p.column, "errtyp": p.kind, "errmsg": p.message}
            for p in pkgdwmapr.validate_mapping_details(ctx, a["p_mapref"])]


def _run_job(ctx: Context, a: Args) -> dict[str, Any]:
    values, settings = pkgdwprc.split_params(_jsonb(a.get("p_params")))
    return {"p_prcid": pkgdwprc.process_job_flow(ctx, a["p_mapref"], values,
                                                 settings=settings)}


def _process_job_flow(ctx: Context, a: Args) -> dict[str, Any]:
    values = [a.get(f"p_param{i}") for i in range(1, pkgdwprc.PARAM_COUNT + 1)]
    return {"p_prcid": pkgdwprc.process_job_flow(ctx, a["p_mapref"], values)}


def _historical(ctx: Context, a: Args) -> dict[str, Any]:
    return {"p_prcid": pkgdwprc.process_historical_data(
        ctx, a["p_mapref"], a.get("p_strtdt"), a.get("p_enddt"), a.get("p_tl_flg"))}


def _preview(ctx: Context, a: Args) -> list[str]:
    row = ctx.rows("SELECT * FROM dms.dms_jobsch WHERE mapref = $1 AND curflg = 'Y'",
                   [str(a["p_mapref"] or "").strip().upper()])
    if not row:
        return []
    now = pkgdwprc.parse_time(ctx.rows("SELECT clock_timestamp()::text AS t")[0]["t"])
    zone = pkgdwprc.zone(ctx)
    return [d.isoformat() for d in schedule.occurrences(
        pkgdwprc.plan_of(row[0]), now, zone, int(a.get("p_count") or 5))]


def _stop(ctx: Context, a: Args) -> None:  # a procedure: it says, it returns nothing
    ctx.say(pkgdwprc.stop_running_job(ctx, a["p_mapref"]))


def _dispatch(ctx: Context, a: Args) -> None:
    done = pkgdwprc.dispatch(ctx, a.get("p_max_requests"))
    ctx.say(f"dispatch: {done} request{'s' if done != 1 else ''} carried out")


ENTRIES: dict[str, tuple[str, Entry]] = {
    # PKGDWMAPR: mapping definitions
    "pkgdwmapr.create_update_sql": (ADMIN, lambda c, a: pkgdwmapr.create_update_sql(
        c, a["p_maprsqlcd"], a["p_maprsql"], a.get("p_sqlconid"))),
    "pkgdwmapr.create_update_mapping": (ADMIN, lambda c, a: pkgdwmapr.create_update_mapping(
        c, _mapping(a))),
    "pkgdwmapr.create_update_mapping_detail": (
        ADMIN, lambda c, a: pkgdwmapr.create_update_mapping_detail(c, _mapping(a))),
    "pkgdwmapr.validate_sql": (ADMIN, lambda c, a: pkgdwmapr.validate_sql(c, a["p_maprsqlcd"])),
    "pkgdwmapr.validate_logic": (ADMIN, lambda c, a: pkgdwmapr.validate_logic(
        c, a["p_maplogic"], a.get("p_keyclnm"), a.get("p_valclnm"))),
    "pkgdwmapr.validate_mapping_details": (ADMIN, _problems),
    "pkgdwmapr.activate_deactivate_mapping": (
        ADMIN, lambda c, a: pkgdwmapr.activate_deactivate_mapping(c, a["p_mapref"], a["p_stflg"])),
    "pkgdwmapr.delete_mapping": (ADMIN, lambda c, a: pkgdwmapr.delete_mapping(c, a["p_mapref"])),
    "pkgdwmapr.delete_mapping_details": (ADMIN, lambda c, a: pkgdwmapr.delete_mapping_details(
        c, a["p_mapref"], a.get("p_trgclnm"))),
    # PKGDWJOB: jobs, target tables, job flows
    "pkgdwjob.version": (VIEWER, lambda c, a: pkgdwjob.version()),
    "pkgdwjob.create_update_job": (ADMIN, lambda c, a: pkgdwjob.create_update_job(
        c, a["p_mapref"])),
    "pkgdwjob.create_target_table": (ADMIN, lambda c, a: pkgdwjob.create_target_table(
        c, a["p_mapref"])),
    "pkgdwjob.create_job_flow": (ADMIN, lambda c, a: pkgdwjob.create_job_flow(c, a["p_mapref"])),
    "pkgdwjob.create_all_jobs": (ADMIN, lambda c, a: pkgdwjob.create_all_jobs(c)),
    "pkgdwjob.run_job": (OPERATOR, _run_job),
    # PKGDWPRC: running, scheduling, stopping
    "pkgdwprc.process_job_flow": (OPERATOR, _process_job_flow),
    "pkgdwprc.process_historical_data": (OPERATOR, _historical),
    "pkgdwprc.create_job_schedule": (ADMIN, lambda c, a: pkgdwprc.create_job_schedule(
        c, a["p_mapref"], a.get("p_frqcd"), a.get("p_frqdd"), a.get("p_frqhh"),
        a.get("p_frqmi"), a.get("p_strtdt"), a.get("p_enddt"))),
    "pkgdwprc.create_job_dependency": (ADMIN, lambda c, a: pkgdwprc.create_job_dependency(
        c, a["p_parent_mapref"], a["p_child_mapref"])),
    "pkgdwprc.enable_disable_schedule": (ADMIN, lambda c, a: pkgdwprc.enable_disable_schedule(
        c, a["p_mapref"], a.get("p_action"))),
    "pkgdwprc.schedule_job_immediate": (OPERATOR, lambda c, a: pkgdwprc.schedule_job_immediate(
        c, a["p_mapref"])),
    "pkgdwprc.stop_running_job": (OPERATOR, _stop),
    "pkgdwprc.dispatch": (OPERATOR, _dispatch),
    "pkgdwprc.next_run_dates": (VIEWER, _preview),
}


def call(plpy: Any, entry: str, args: Args) -> Any:
    """Run one entry point for the calling session."""
    from dms_pkg.engine.server import local_login

    role, run = ENTRIES[entry]
    local, login = local_login(plpy, role)
    return run(Context(local, login, notify=plpy.notice), args)
