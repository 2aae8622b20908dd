"""Turn a request into a recorded run: check everything, plan, write nothing until sure.

Order matters for the promise "bad input gets a clear error and nothing is
written": settings, connections, the source query (parse, chunk key), the
source's columns, the target table and how the columns match -- all are
checked before the first write.  Only then is a missing target created (when
asked), the target emptied (write mode truncate) and the run recorded with
its chunks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from dms_pkg.backends import postgres
from dms_pkg.backends.base import PLANNED_POINT, PlanningSession, SourceBackend, backend_for
from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.chunking.dialects import ParamStyle
from dms_pkg.chunking.plan import MAX_CHUNKS, ChunkPlan
from dms_pkg.chunking.planner import plan_chunks
from dms_pkg.chunking.preview import show_value
from dms_pkg.db.base import Session
from dms_pkg.db.faults import fault_of
from dms_pkg.db.psycopg_db import PsycopgDatabase
from dms_pkg.engine import columns as cols
from dms_pkg.engine import config as cfg
from dms_pkg.engine import connections, merge
from dms_pkg.engine import source_query as sq
from dms_pkg.engine import target as stage
from dms_pkg.engine.codec import encode_params
from dms_pkg.engine.local import Local
from dms_pkg.engine.movers import RunSpec
from dms_pkg.errors import INVALID_PARAMETER_VALUE, UNDEFINED_COLUMN, DmsError

# Connections kept free for everybody else when sizing the worker pool.
_HEADROOM_RESERVE = 3


@dataclass
class RunRequest:
    source_sql: str
    target_schema: str
    target_table: str
    source_conid: int | None = None
    target_conid: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    queued: bool = False  # submit: record it QUEUED for a dispatcher
    prcid: int | None = None  # the mapper job process the run is a step of
    mapcmbcd: str | None = None  # the mapping combination it loads
    label: str | None = None


@dataclass
class PlannedRun:
    run_id: int
    spec: RunSpec
    plan: ChunkPlan
    workers: int
    note: str | None
    config: cfg.EngineConfig
    queued: bool = False
    # Said on the run and as NOTICEs: side effects that repeat, stale statistics.
    notes: tuple[str, ...] = ()


def _require_identifier(value: str | None, what: str) -> str:
    if value is None or not str(value).strip():
        raise DmsError(f"{what} is required", sqlstate=INVALID_PARAMETER_VALUE,
                       hint=f"pass {what} (its name as stored, case-sensitive)")
    return str(value)


def effective_config(
    home: Session, params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> cfg.EngineConfig:
    return cfg.effective(home, params, os.environ if environ is None else environ)


def choose_path(requested: str, same_database: bool, cmap: cols.ColumnMap,
                source: Endpoint, target: Endpoint) -> str:
    # Binary COPY needs identical built-in types on both ends; only a
    # PostgreSQL source writes it, every other source COPY text.
    binary = cmap.binary_safe and source.dbtyp == "POSTGRESQL"
    if requested == "auto":
        if same_database:
            return "same_db"
        return "copy_binary" if binary else "copy_text"
    if requested == "same_db" and not same_database:
        raise DmsError(
            f'path "same_db" needs the source and the target in one database, but the '
            f"source is {source.describe()} and the target is {target.describe()}",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint='leave "path" out (auto) to stream the rows with COPY',
        )
    if requested == "copy":
        return "copy_binary" if binary else "copy_text"
    return requested


def choose_workers(
    config: cfg.EngineConfig, estimated_rows: int, n_chunks: int, headroom: int | None,
    per_worker: int, source_backend: SourceBackend | None = None,
) -> tuple[int, str | None]:
    """How many workers, and why fewer than max_workers when that is so."""
    wanted = int(config["max_workers"])
    if not config["enable_parallel"]:
        return 1, "sequential: enable_parallel is false"
    if estimated_rows < int(config["min_rows_for_parallel"]):
        return 1, (
            f"sequential: about {estimated_rows:,} rows estimated, below "
            f"min_rows_for_parallel ({int(config['min_rows_for_parallel']):,})"
        )
    workers, note = wanted, None
    cap = source_backend.MAX_READERS if source_backend is not None else None
    if cap is not None and cap < workers:
        workers = cap
        label = source_backend.LABEL or source_backend.NAME  # type: ignore[union-attr]
        note = (f"capped at {_plural(cap, 'worker')}: a {label} source is read by at most "
                f"{_plural(cap, 'worker')}")
    if n_chunks < workers:
        workers = max(1, n_chunks)
        note = f"{_plural(workers, 'worker')}: the source has only {_plural(n_chunks, 'chunk')}"
    if headroom is not None:
        fit = max(1, (headroom - _HEADROOM_RESERVE) // (1 + per_worker))
        if fit < workers:
            workers = fit
            note = (
                f"capped at {_plural(fit, 'worker')}: the server accepts {headroom} more "
                f"connections (max_connections) and each worker needs {1 + per_worker}"
            )
    return workers, note


def plan_run(local: Local, request: RunRequest, *, environ: Mapping[str, str] | None = None,
             transform_given: bool = False) -> PlannedRun:
    home = local.session
    schema = _require_identifier(request.target_schema, "the target schema")
    table = _require_identifier(request.target_table, "the target table")
    if not request.source_sql or not request.source_sql.strip():
        raise DmsError("the source query is empty", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="pass the SELECT that reads the source")
    config = effective_config(home, request.params, environ)

    def resolve(conid: int | None, role: str) -> Endpoint:
        return connections.resolve(home, conid, local.conninfo.conninfo, role)

    source = resolve(request.source_conid, "source")
    target = resolve(request.target_conid, "target")
    source_backend = backend_for(source.dbtyp)
    # The source text is parsed before anything runs it: one query that only reads.
    tree = sq.parsed(request.source_sql, source.dialect)
    same_database = source.conid == target.conid
    lock_target(home, target.conid, schema, table)
    if config["if_busy"] == "queue":
        request = replace(request, queued=True)
    target_name = cols.table_name(schema, table)

    with ExitStack() as stack:
        def target_session_for(info: Endpoint) -> Session:
            if info.is_local:
                return local.session
            return PsycopgDatabase(stack.enter_context(postgres.connect(info, autocommit=False)))

        if source.is_local:
            source_planning: PlanningSession = postgres.Planning(local.session,
                                                                 local.planner_source)
        else:
            source_planning = stack.enter_context(source_backend.planning(source))
        if same_database:  # the target is PostgreSQL, so the source is this PostgreSQL
            assert isinstance(source_planning, postgres.Planning)
            target_session = source_planning.session
        else:
            target_session = target_session_for(target)

        plan, query_rows = plan_source(source_planning, request.source_sql, config,
                                       source_backend.PARAM_STYLE)
        source_columns = _describe_source(source_planning, request.source_sql, source,
                                          source_backend)
        _check_checkpoint_column(config, source_columns)
        notes = tuple(source_planning.notes(tree))
        target_columns = cols.describe_table(target_session, schema, table)
        create = target_columns is None and bool(config["create_target"])
        if create:
            target_columns = [
                cols.TargetColumn(c.name, c.type_oid, c.type_name, False, False, False)
                for c in source_columns
            ]
        merge_spec = merge_spec_of(config)
        cmap = cols.match(source_columns, cols.require_table(target_columns, schema, table),
                          target_name, merge_spec.managed() if merge_spec else ())
        if not create:
            cols.check_assignable(target_session, cmap, schema, table)
        path = "rows" if transform_given else choose_path(
            config["path"], same_database, cmap, source, target)

        estimated = (query_rows if query_rows is not None
                     else sum(c.estimated_rows or 0 for c in plan.chunks))
        headroom_rows = home.query("SELECT dms.connection_headroom() AS n")
        headroom = int(headroom_rows[0]["n"]) if headroom_rows else None
        # Loopback connections a worker opens to this server besides its session.
        per_worker = int(target.is_local) + int(source.is_local and path != "same_db")
        workers, note = choose_workers(config, estimated, len(plan.chunks), headroom, per_worker,
                                       source_backend)
        consistency = source_backend.consistency_note(config.values, workers)
        if consistency:
            notes += (consistency,)
        if merge_spec is not None:
            assert target_columns is not None
            merge.check_spec(merge_spec, cmap.names, [c.name for c in target_columns],
                             target_name)
        # Queued or not (submit_query_parallel, dms run), a busy target is refused
        # unless the caller asked to queue behind the run loading it.
        busy = active_run_on(home, target.conid, schema, table)
        if busy is not None and config["if_busy"] == "refuse":
            raise _busy_error(busy, target_name)

        # A first load into an empty target guarded by a unique index on the
        # key goes straight in (merge.direct); not for a run queued behind
        # another, which may well have filled the target by then.
        guard = None
        if (merge_spec is not None and path == "same_db" and not create and busy is None
                and config["write_mode"] != "truncate"):
            guard = merge.guard_of(target_session, merge_spec, schema, table)
        if guard is not None:
            notes += (f"first load: chunks insert straight into the target (empty, guarded "
                      f"by unique index {guard})",)
        # Everything checked: from here on we write.
        if create:
            cols.create_table(target_session, schema, table, source_columns)
        staging = None
        if config["write_mode"] == "truncate":
            staging = stage.create_staging(target_session, schema, table)
        stage.ensure_ledger(target_session, target.describe())
        if target_session is not home:
            target_session.commit()

    spec = run_spec(path, cmap, schema, table, staging, merge_spec, source, target,
                    local.search_path, guard=guard)
    run = {
        "label": request.label or f"{_short(plan.driving_table or 'query')} -> {schema}.{table}",
        "source_conid": source.conid, "source_dialect": source.dialect,
        "source_sql": request.source_sql, "target_conid": target.conid,
        "target_schema": schema, "target_table": table, "params": dict(request.params),
        "config": config.as_json(), "spec": spec.as_json(), "path": path,
        "write_mode": config["write_mode"], "strategy": plan.strategy, "chunk_key": plan.key,
        "driving_table": plan.driving_table, "refused_reason": plan.refused_reason,
        "parallel_note": note, "workers_requested": int(config["max_workers"]),
        "workers_planned": workers, "estimated_rows": estimated,
        "state": "QUEUED" if request.queued else "RUNNING",
        "search_path": local.search_path, "staging_table": staging,
        "prcid": request.prcid, "mapcmbcd": request.mapcmbcd, "notes": list(notes),
    }
    chunks = [
        {
            "chunk_no": c.chunk_no, "kind": c.kind, "predicate_sql": c.predicate_sql,
            "query_sql": c.query_sql, "params": encode_params(c.params),
            "lo": show_value(c.lo), "hi": show_value(c.hi), "estimated_rows": c.estimated_rows,
        }
        for c in plan.chunks
    ]
    rows = home.query(
        "SELECT dms.record_run($1::jsonb, $2::jsonb) AS run_id",
        [json.dumps(run, default=str), json.dumps(chunks, default=str)],
    )
    run_id = int(rows[0]["run_id"])
    spec = RunSpec(**{**spec.__dict__, "run_id": run_id})
    return PlannedRun(run_id, spec, plan, workers, note, config, request.queued, notes)


def active_run_on(
    home: Session, conid: int | None, schema: str, table: str
) -> dict[str, Any] | None:
    """The run that is loading this target now, if any.

    A run counts while it is queued, or while its coordinator or one of its
    workers is alive; a run left RUNNING by a crash does not block, but the
    message of the new run's refusal would name it.  Callers hold the
    target's advisory lock (``lock_target``) so two planners cannot both see
    the target free.
    """
    rows = home.query(
        "SELECT r.run_id, r.state, r.created_by FROM dms.run r"
        " WHERE r.target_conid IS NOT DISTINCT FROM $1::bigint AND r.target_schema = $2::text"
        " AND r.target_table = $3::text AND r.state IN ('QUEUED', 'RUNNING', 'STOPPING')"
        " AND (r.state = 'QUEUED'"
        "      OR EXISTS (SELECT FROM pg_catalog.pg_stat_activity a"
        "                 WHERE a.pid = r.coordinator_pid)"
        "      OR EXISTS (SELECT FROM dms.chunk c JOIN pg_catalog.pg_stat_activity a"
        "                 ON a.pid = c.worker_pid WHERE c.run_id = r.run_id"
        "                 AND c.state = 'RUNNING'))"
        " ORDER BY r.run_id LIMIT 1",
        [conid, schema, table],
    )
    return rows[0] if rows else None


def lock_target(home: Session, conid: int | None, schema: str, table: str) -> None:
    """Serialise planners of one target until the caller's transaction ends."""
    home.query(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1::text, 7))",
        [json.dumps([conid, schema, table])],
    )


def _busy_error(busy: dict[str, Any], target_name: str) -> DmsError:
    return DmsError(
        f"target {target_name} is being loaded by run {busy['run_id']} ({busy['state']}, "
        f"started by {busy['created_by']})",
        sqlstate="55006",
        detail="two runs loading one table at once could interleave or undo each other",
        hint=f"wait for run {busy['run_id']} (SELECT * FROM dms.run_progress WHERE run_id = "
        f"{busy['run_id']}), stop it with CALL dms.stop_run({busy['run_id']}), or pass "
        """p_params => '{"if_busy": "queue"}' to start when it is done""",
    )


def run_spec(path: str, cmap: cols.ColumnMap, schema: str, table: str, staging: str | None,
             merge_spec: merge.MergeSpec | None, source: Endpoint, target: Endpoint,
             search_path: str | None = None, source_conid: int | None = None,
             target_conid: int | None = None, guard: str | None = None) -> RunSpec:
    """Where the chunks load and how (the target, its staging table, or the merge's
    stage): one answer for the SQL API and the Python API, so they cannot drift.

    ``guard``: the unique index of an empty target (``merge.guard_of``): a
    same_db merge then inserts its chunks straight into the target.  A same_db
    scd merge reads each chunk once, without the stage (``merge.fused``)."""
    target_name = cols.table_name(schema, table)
    load_table = cols.table_name(schema, staging) if staging else target_name
    insert_target = cols.insert_columns(cmap, schema, staging or table)
    merge_plan = None
    if merge_spec is not None:
        # The stage takes any length: the target refuses a value too long in
        # the merge, where the refused rows can be found one by one.
        types = {c.name: cols.checked_cast(c.type_name) for c in cmap.target}
        # Truncate-and-load appends into the staging table, swapped in at the end.
        merge_plan = merge.plan(merge_spec, schema, staging or table, cmap.names, types)
        if guard is not None and path == "same_db" and staging is None:
            merge_plan.direct = merge.direct(merge_spec, schema, table, cmap.names, types)
            merge_plan.guard = guard
        if path == "same_db" and staging is None and merge_spec.kind == "scd":
            merge_plan.fused = merge.fused(merge_spec, schema, table, cmap.names, types)
        load_table, insert_target = merge.STAGE_TABLE, merge.stage_target(cmap.names)
    return RunSpec(
        run_id=0, path=path, select_list=cols.select_list(cmap, source.dbtyp),
        insert_target=insert_target, target_table=target_name, load_table=load_table,
        columns=tuple(cmap.names),
        source_conid=source.conid if source_conid is None else source_conid,
        target_conid=target.conid if target_conid is None else target_conid,
        search_path=search_path,
        merge=merge_plan.as_json() if merge_plan else None,
        merge_keys=merge_spec.keys if merge_spec else (),
    )


def merge_spec_of(config: cfg.EngineConfig) -> merge.MergeSpec | None:
    """The run's ``merge`` setting, checked against its write mode."""
    if not config["merge"]:
        return None
    spec = merge.MergeSpec.from_json(config["merge"])
    if config["write_mode"] == "truncate" and spec.kind != "append":
        raise DmsError(
            "write_mode truncate and a merge of kind scd cannot be combined",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="an SCD merge compares with what the target holds: emptying it first would "
            "drop its history",
        )
    return spec


def plan_source(
    planning: PlanningSession, query: str, config: cfg.EngineConfig,
    style: ParamStyle = ParamStyle.PYFORMAT,
) -> tuple[ChunkPlan, int | None]:
    """The chunk plan, and the source's estimate of the query's rows.

    That estimate (its filters included) sizes the chunk count and the chunks'
    estimates; the planner's own statistics see only the driving table.  The
    chunk queries are rendered with binds in ``style``: the style of the
    driver the workers read with (the backend's), whatever the planner used.
    A plan exact only as of the point it was measured at (``ChunkPlan.point``)
    records that point in ``config`` (``PLANNED_POINT``), where the backend's
    ``consistent_point`` and readers find it.
    """
    query_rows = planning.estimate(query)
    n_chunks = config["chunks"]
    if n_chunks is None and query_rows is not None:
        n_chunks = max(1, min(MAX_CHUNKS, math.ceil(query_rows / config["chunk_size"])))
    plan = plan_chunks(
        planning.planner, query, key=config["key"], n_chunks=n_chunks,
        chunk_size=config["chunk_size"], strategy=config["strategy"],
        render_style=style,
    )
    if plan.point is not None:
        config.record_planned(PLANNED_POINT, plan.point)
    return scale_estimates(plan, query_rows), query_rows


def scale_estimates(plan: ChunkPlan, query_rows: int | None) -> ChunkPlan:
    """Chunk estimates scaled so they add up to the query's estimated rows."""
    if query_rows is None or not plan.chunks:
        return plan
    table_rows = sum(c.estimated_rows or 0 for c in plan.chunks)
    if table_rows <= 0:  # no statistics (say, a query that is not split): spread evenly
        share = query_rows / len(plan.chunks)
        chunks = tuple(replace(c, estimated_rows=round(share)) for c in plan.chunks)
    else:
        factor = query_rows / table_rows
        chunks = tuple(
            replace(c, estimated_rows=None if c.estimated_rows is None
                    else round(c.estimated_rows * factor))
            for c in plan.chunks
        )
    return replace(plan, chunks=chunks)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _short(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


def _describe_source(planning: PlanningSession, query: str, source: Endpoint,
                     backend: SourceBackend) -> list[cols.SourceColumn]:
    try:
        return planning.describe(query)
    except Exception as exc:
        if isinstance(exc, DmsError):
            raise
        fault = backend.classify(exc) or fault_of(exc)
        if fault is None:
            raise
        raise DmsError(
            f"the source query fails on {source.describe()}: {fault.message}",
            sqlstate=fault.sqlstate or "42000", detail=fault.detail,
            hint="; ".join(h for h in (fault.hint, "run the query on the source to see the "
                                       "problem") if h),
        ) from None


def _check_checkpoint_column(config: cfg.EngineConfig,
                             columns: list[cols.SourceColumn]) -> None:
    """The checkpoint column must be one the source query returns: the run reads
    ``max()`` of it over the query, after the run and its chunks are recorded."""
    column = config["checkpoint_column"]
    names = [c.name for c in columns]
    if column is None or column in names:
        return
    close = [n for n in names if n.lower() == str(column).lower()]
    raise DmsError(
        f'checkpoint_column "{column}" is not a column of the source query',
        sqlstate=UNDEFINED_COLUMN,
        detail="the source query returns: " + ", ".join(names),
        hint=(f'did you mean "{close[0]}"? Column names are case-sensitive' if close else
              "name one of the query's output columns, or give the column that name "
              "with AS"),
    )
