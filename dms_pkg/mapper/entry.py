"""The mapper packages seen from SQL: one table of entry points.

Every ``pkgdwmapr.*``, ``pkgdwjob.*`` and ``pkgdwprc.*`` function and
procedure has the same PL/Python body (``plpy/mapper.py``), which calls
``call(plpy, entry, args)`` with its own name and its ``p_`` arguments.  The
table below says which role the caller needs and what runs; the role is
checked before anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.engine import booting
from dms_pkg.engine.config import parse_params
from dms_pkg.engine.server import local_login
from dms_pkg.mapper import pkgdwjob, pkgdwmapr, pkgdwprc
from dms_pkg.mapper.context import Context
from dms_pkg.security import ADMIN, OPERATOR, VIEWER

Args = Mapping[str, Any]
Entry = Callable[[Context, Args], Any]


def _mapping(a: Args) -> dict[str, Any]:
    return {k[2:]: v for k, v in a.items()}


def _problems(ctx: Context, a: Args) -> list[dict[str, Any]]:
    return [{"trgclnm": p.column, "errtyp": p.kind, "errmsg": p.message}
            for p in pkgdwmapr.validate_mapping_details(ctx, a["p_mapref"])]


def _run_job(ctx: Context, a: Args) -> dict[str, Any]:
    values, settings = pkgdwprc.split_params(parse_params(a.get("p_params")))
    return {"p_prcid": pkgdwprc.process_job_flow(ctx, a["p_mapref"], values,
                                                 settings=settings)}


def _process_job_flow(ctx: Context, a: Args) -> dict[str, Any]:
    values = [a.get(f"p_param{i}") for i in range(1, pkgdwprc.PARAM_COUNT + 1)]
    return {"p_prcid": pkgdwprc.process_job_flow(ctx, a["p_mapref"], values)}


def _historical(ctx: Context, a: Args) -> dict[str, Any]:
    return {"p_prcid": pkgdwprc.process_historical_data(
        ctx, a["p_mapref"], a.get("p_strtdt"), a.get("p_enddt"), a.get("p_tl_flg"))}


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
    "pkgdwprc.carry_out_request": (OPERATOR, lambda c, a: pkgdwprc.carry_out_request(
        c, a["p_reqid"])),
    "pkgdwprc.next_run_dates": (VIEWER, lambda c, a: pkgdwprc.next_run_dates(
        c, a["p_mapref"], a.get("p_count"))),
}


def call(plpy: Any, entry: str, args: Args, booted: Sequence[str] | None = None) -> Any:
    """Run one entry point for the calling session; ``booted``: worker sessions
    opened for it (``head_start``; None: none were tried for), closed here
    unless a job run took them."""
    role, run = ENTRIES[entry]
    try:
        local, login = local_login(plpy, role)
    except BaseException:
        booting.close_quietly(PlpyDatabase(plpy), list(booted or ()))
        raise
    ctx = Context(local, login, notify=plpy.notice,
                  booted=None if booted is None else list(booted))
    try:
        return run(ctx, args)
    finally:
        booting.close_quietly(ctx.db, ctx.take_booted() or [])
