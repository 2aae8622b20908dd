"""The ``dms`` command line.

Every failure is printed as the same three parts PostgreSQL uses (message,
DETAIL, HINT) and exits non-zero; no traceback for errors we anticipated.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dms_pkg import __version__
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

if TYPE_CHECKING:  # imported lazily at run time: `dms --help` stays fast
    from dms_pkg.chunking.plan import ChunkPlan
    from dms_pkg.chunking.preview import PlanRow


def _dsn(args: argparse.Namespace) -> str:
    dsn: str | None = args.dsn or os.environ.get("DMS_DSN")
    if not dsn:
        raise DmsError(
            "no database given",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="pass --dsn 'host=... dbname=...' or set DMS_DSN; for the project's own "
            "cluster use --dsn \"$(dms sandbox url --db NAME)\"",
        )
    return dsn


def _cmd_install(args: argparse.Namespace) -> int:
    from dms_pkg.install.installer import install

    report = install(
        _dsn(args),
        migrations_dir=Path(args.migrations_dir) if args.migrations_dir else None,
    )
    print(report.summary())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from dms_pkg.db.psycopg_db import PsycopgDatabase
    from dms_pkg.diagnostics import check_install
    from dms_pkg.install.installer import connect

    with connect(_dsn(args)) as conn:
        checks = check_install(PsycopgDatabase(conn))
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


def _cmd_pylib(args: argparse.Namespace) -> int:
    from dms_pkg import pylib
    from dms_pkg.install.bundle import DEFAULT_PYTHON_LIB_DIR

    target = Path(args.target or DEFAULT_PYTHON_LIB_DIR)
    print(pylib.ensure(target, wheel=Path(args.wheel) if args.wheel else None))
    return 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from dms_pkg.sandbox import Sandbox

    box = Sandbox.default()
    if args.action == "start":
        for line in box.start():
            print(line)
    elif args.action == "stop":
        for line in box.stop():
            print(line)
    elif args.action == "status":
        status = box.status()
        for key, value in status.items():
            print(f"{key}: {value}")
        return 0 if status["running"] else 3
    elif args.action == "url":
        print(box.url(dbname=args.db))
    elif args.action == "dsn":
        print(box.dsn(dbname=args.db))
    elif args.action == "psql":
        # Replace this process with psql: the user gets an interactive session.
        os.execvp("psql", ["psql", box.dsn(dbname=args.db), *args.extra])  # noqa: S606
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from dms_pkg.chunking.preview import plan_rows, preview
    from dms_pkg.db.sources import open_source

    sql_text = Path(args.file).read_text(encoding="utf-8") if args.file else args.sql
    if not sql_text:
        raise DmsError(
            "no source query given",
            sqlstate=INVALID_PARAMETER_VALUE,
            hint="pass --sql 'SELECT ...' or --file query.sql",
        )
    source_cm = open_source(args.dsn) if args.dsn else nullcontext(None)
    with source_cm as source:
        dialect = args.dialect or (source.dialect if source is not None else "postgres")
        plan = preview(
            source, sql_text, dialect=dialect, key=args.key, n_chunks=args.chunks,
            chunk_size=args.chunk_size, strategy=args.strategy,
        )
    if args.json:
        from dms_pkg import cli_json

        print(cli_json.plan(plan, plan_rows(plan)))
        return 0
    _print_plan(plan, plan_rows(plan))
    return 0


def _print_plan(plan: ChunkPlan, rows: list[PlanRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    from dms_pkg.chunking.preview import readable_binds

    console = Console(width=max(160, Console().width))
    console.print(
        f"strategy [bold]{plan.strategy}[/]  dialect {plan.dialect}  "
        f"driving table {plan.driving_table or '-'}  key {plan.key or '-'}  "
        f"chunks {len(plan.chunks)}"
    )
    if plan.refused_reason:
        console.print(f"[yellow]not split:[/] {plan.refused_reason}")
    for note in plan.notes:
        console.print(f"note: {note}")
    table = Table("chunk", "kind", "est. rows", "lo", "hi", "predicate")
    for row in rows:
        table.add_row(
            str(row.chunk_no), row.kind,
            "" if row.estimated_rows is None else f"{row.estimated_rows:,}",
            row.lo or "", row.hi or "",
            readable_binds(row.predicate_sql, plan.param_style) or "(whole query)",
        )
    console.print(table)


def _connect_home(args: argparse.Namespace, **kwargs: Any) -> Any:
    from dms_pkg.install.installer import connect

    return connect(_dsn(args), **kwargs)


def _run_params(text: str | None) -> dict[str, Any]:
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DmsError(f"--params is not valid JSON: {exc}", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="""for example --params '{"max_workers": 4}'""") from None
    if not isinstance(value, dict):
        raise DmsError(f"--params must be a JSON object, got {type(value).__name__}",
                       sqlstate=INVALID_PARAMETER_VALUE,
                       hint="""for example --params '{"max_workers": 4}'""")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    import json
    import threading

    from dms_pkg.watch import fetch_progress, watch

    params = _run_params(args.params)
    if args.source_dsn:
        return _run_from_client(args, params)
    with _connect_home(args, autocommit=True) as conn:
        # A refusal (bad query, missing table, busy target) comes back as the
        # server's error: main() prints it as "dms: error: ..." with its HINT.
        row = conn.execute(
            "SELECT dms.submit_query_parallel(%s, %s, %s, %s, %s, %s::jsonb)",
            [args.source_conid, args.sql, args.target_conid, args.schema, args.table,
             json.dumps(params)],
        ).fetchone()
        assert row is not None
        run_id = int(row[0])
        if not args.json:
            print(f"run {run_id} submitted")
        failure: list[BaseException] = []

        def carry_out() -> None:
            try:
                with _connect_home(args, autocommit=True) as runner:
                    runner.execute("CALL dms.run_queued(%s)", [run_id])
            except Exception as exc:  # reported below, after the watch
                failure.append(exc)

        thread = threading.Thread(target=carry_out, daemon=True)
        thread.start()
        if args.json:
            thread.join()
            return _print_run_json(fetch_progress(conn, run_id), failure)
        final = watch(conn, run_id, going=thread.is_alive) if not args.no_watch else None
        thread.join()
        if final is None:
            final = fetch_progress(conn, run_id)
            print(f"run {run_id} {final['state']}" + (f": {final['message']}"
                                                      if final["message"] else ""))
    if final["state"] != "SUCCEEDED":
        if failure:
            exc = failure[0]
            _print_error(_as_dms_error(exc) or DmsError(
                f"internal error: {type(exc).__name__}: {exc}", sqlstate="XX000"))
        return 1
    return 0


def _print_run_json(final: dict[str, Any], failure: list[BaseException]) -> int:
    """``dms run --json``: the run's last progress row, and the error if it failed."""
    from dms_pkg import cli_json

    body = cli_json.progress(final, final=True)
    if failure:
        exc = _as_dms_error(failure[0]) or DmsError(str(failure[0]), sqlstate="XX000")
        body["error"] = {"sqlstate": exc.sqlstate, "message": exc.message,
                         "detail": exc.detail, "hint": exc.hint}
    print(cli_json.dumps("run", body))
    return 0 if final["state"] == "SUCCEEDED" else 1


def _run_from_client(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """``dms run --source-dsn URL``: this process reads the source (any database with a
    backend: mysql://, sqlite:///, oracle://, postgresql://) and loads --dsn's
    database, with the Python API's workers -- threads of this process."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from dms_pkg.engine.api import execute_query_parallel

    if args.source_conid is not None or args.target_conid is not None:
        raise DmsError("--source-dsn reads the source from this process; it cannot be combined "
                       "with --source-conid or --target-conid", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give either --source-dsn (and --dsn for the target) or connection "
                       "ids that the server reads")
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>5.1f}%  {task.fields[rows]:,} rows"),
                  TimeRemainingColumn(), disable=args.no_watch or args.json) as bar:
        task = bar.add_task("loading", total=100.0, rows=0)

        def show(snapshot: Any) -> None:
            bar.update(task, completed=snapshot.progress_percentage,
                       rows=snapshot.total_rows_processed)

        result = execute_query_parallel(
            args.source_dsn, args.sql, target_conn=_dsn(args), target_schema=args.schema,
            target_table=args.table, progress_callback=show, **params)
    if args.json:
        from dms_pkg import cli_json

        print(cli_json.api_result(result))
        return 0 if result.chunks_failed == 0 else 1
    print(f"{result.total_rows_successful:,} rows in {result.chunks_total} chunks, "
          f"{result.workers} worker{'s' if result.workers != 1 else ''}, path {result.path}, "
          f"{result.processing_time:.1f} s" + (f"; {result.parallel_note}"
                                               if result.parallel_note else ""))
    for error in result.chunk_errors[:5]:
        print(f"chunk {error['chunk_id']} failed: [{error['sqlstate']}] {error['error']}",
              file=sys.stderr)
    return 0 if result.chunks_failed == 0 else 1


def _cmd_watch(args: argparse.Namespace) -> int:
    from dms_pkg.watch import watch, watch_json

    with _connect_home(args) as conn:
        if args.json:
            from dms_pkg import cli_json

            final = watch_json(conn, args.run_id, print)
            body = cli_json.progress(final, final=True)
            picture = _picture_at_end(conn, args.run_id, Path(args.report_dir), quiet=True)
            body["picture_png"] = str(picture.png) if picture else None
            body["picture_svg"] = str(picture.svg) if picture else None
            print(cli_json.dumps("progress", body, indent=None))
        else:
            final = watch(conn, args.run_id)
            _picture_at_end(conn, args.run_id, Path(args.report_dir))
    return 0 if final["state"] == "SUCCEEDED" else 1


def _picture_at_end(conn: Any, run_id: int, out_dir: Path, quiet: bool = False) -> Any:
    """The run's picture, drawn once it ended; said where it is (or why not)."""
    from dms_pkg import run_report

    try:
        picture = run_report.draw(run_report.load(conn, run_id), out_dir)
    except DmsError as exc:  # matplotlib missing: the watch itself went fine
        print(f"no picture of run {run_id}: {exc.message}", file=sys.stderr)
        return None
    if not quiet:
        print(f"picture of run {run_id}: {picture.png} (and {picture.svg.name})")
    return picture


def _cmd_report(args: argparse.Namespace) -> int:
    from dms_pkg import run_report

    with _connect_home(args) as conn:
        data = run_report.load(conn, args.run_id)
    if args.json:
        print(run_report.report_json(data))
        return 0
    picture = run_report.draw(data, Path(args.out))
    print(f"{picture.png}\n{picture.svg}")
    if args.html:
        print(run_report.write_html(data, picture, Path(args.html)))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dms_pkg.watch import status_rows, status_table

    with _connect_home(args) as conn:
        if args.json:
            from dms_pkg import cli_json

            print(cli_json.status(status_rows(conn, args.limit)))
            return 0
        Console(width=max(160, Console().width)).print(status_table(conn, args.limit))
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from dms_pkg.engine.external import run_external_worker

    outcome = run_external_worker(_dsn(args), args.run_id, notify=print)
    print(f"run {outcome.run_id}: {outcome.action}; now {outcome.state}"
          + (f": {outcome.message}" if outcome.message else ""))
    return 0 if outcome.state in ("SUCCEEDED", "RUNNING") else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from dms_pkg.demo import run_demo

    return run_demo(dbname=args.db, rows=args.rows, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dms", description="dms_pkg: parallel data-warehouse loads driven from PostgreSQL"
    )
    parser.add_argument("--version", action="version", version=f"dms_pkg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("install", help="install or upgrade the plugin in one database")
    p.add_argument("--dsn", help="target database (default: $DMS_DSN)")
    p.add_argument(
        "--migrations-dir",
        help="use this folder of numbered migrations instead of the packaged ones",
    )
    p.set_defaults(func=_cmd_install)

    p = sub.add_parser("doctor", help="check an installation")
    p.add_argument("--dsn", help="database to check (default: $DMS_DSN)")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("pylib", help="install dms_pkg for a server's PL/Python")
    p.add_argument("action", choices=["install"])
    p.add_argument("--target", help="library root (default: /usr/local/lib/dms_pkg)")
    p.add_argument("--wheel", help="install from this wheel instead of the package index")
    p.set_defaults(func=_cmd_pylib)

    p = sub.add_parser(
        "sandbox",
        help="the project's own PostgreSQL cluster",
        epilog="dms sandbox psql --db NAME -- -c 'SELECT 1' passes options after -- to psql",
    )
    p.add_argument("action", choices=["start", "stop", "status", "url", "dsn", "psql"])
    p.add_argument("--db", default="postgres", help="database for url/dsn/psql")
    p.set_defaults(func=_cmd_sandbox)

    p = sub.add_parser(
        "plan",
        help="show how a source query would be split into chunks, without running it",
        epilog="--dsn takes a PostgreSQL connection string, mysql://user@host:port/db or "
        "sqlite:///path/to/file.db; without it the query is planned without statistics",
    )
    p.add_argument("--dsn", help="source database to measure (default: none)")
    p.add_argument("--sql", help="the source query")
    p.add_argument("--file", help="read the source query from this file")
    p.add_argument("--dialect", help="SQL dialect of the query (default: the source's)")
    p.add_argument("--key", help="chunk key column(s), e.g. id or 'region, id'")
    p.add_argument("--chunks", type=int, help="number of chunks (default: from --chunk-size)")
    p.add_argument("--chunk-size", type=int, help="rows per chunk (default: 100000)")
    p.add_argument("--strategy", default="auto", help="auto, key_range, quantile, ctid, "
                   "rowid, hash, offset or single")
    p.add_argument("--json", action="store_true", help="the plan as JSON (docs/json.md)")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("run", help="move a query's rows into a table in parallel, with progress")
    p.add_argument("--dsn", help="the database where dms is installed (default: $DMS_DSN)")
    p.add_argument("--sql", required=True, help="the source query")
    p.add_argument("--source-conid", type=int, help="DMS_DBCONDTLS.CONID (default: --dsn's db)")
    p.add_argument("--source-dsn", help="read the source from this process instead: a URL "
                   "(mysql://user@host/db, sqlite:///path, oracle://..., postgresql://...); "
                   "the password comes from the URL or the driver's own files, never shown")
    p.add_argument("--target-conid", type=int, help="DMS_DBCONDTLS.CONID (default: --dsn's db)")
    p.add_argument("--schema", default="public", help="target schema (default: public)")
    p.add_argument("--table", required=True, help="target table")
    p.add_argument("--params", help="""run parameters as JSON, e.g. '{"max_workers": 4}'""")
    p.add_argument("--no-watch", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="no progress bar; print the outcome as "
                   "one JSON object (docs/json.md)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("watch", help="follow a run's progress until it ends")
    p.add_argument("run_id", type=int)
    p.add_argument("--dsn", help="the database where dms is installed (default: $DMS_DSN)")
    p.add_argument("--report-dir", default="dms-reports",
                   help="where the run's picture is written at the end (default: ./dms-reports)")
    p.add_argument("--json", action="store_true", help="a JSON line per change of progress "
                   "instead of a bar, the last one with final: true (docs/json.md)")
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser("report", help="a picture of a run: its chunks on a timeline (PNG, SVG)")
    p.add_argument("run_id", type=int)
    p.add_argument("--dsn", help="the database where dms is installed (default: $DMS_DSN)")
    p.add_argument("--out", default="dms-reports", help="folder for run-<id>.png and .svg "
                   "(default: ./dms-reports)")
    p.add_argument("--html", help="also write one self-contained HTML page here")
    p.add_argument("--json", action="store_true",
                   help="print the run and its chunks as JSON instead (docs/report.md)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("status", help="the latest runs and how they went")
    p.add_argument("--dsn", help="the database where dms is installed (default: $DMS_DSN)")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="the runs as JSON (docs/json.md)")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("worker", help="start a queued run, or join a running one as a worker")
    p.add_argument("--run-id", type=int, required=True)
    p.add_argument("--dsn", help="the database where dms is installed (default: $DMS_DSN)")
    p.set_defaults(func=_cmd_worker)

    from dms_pkg.jobs.schema_diff import command as schema_diff

    schema_diff.add_parser(sub, schema_diff.run)

    from dms_pkg.jobs.profile import command as profile

    profile.add_parser(sub, profile.run)

    from dms_pkg.jobs.compare import command as table_compare

    table_compare.add_parser(sub, table_compare.run)

    p = sub.add_parser("demo", help="run the end-to-end demo on the sandbox")
    p.add_argument("--db", default="dms_demo", help="demo database name")
    p.add_argument("--rows", type=int, default=1_000_000, help="orders in the sample source")
    p.add_argument("--workers", type=int, default=2, help="parallel workers")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is passed through (e.g. psql options), untouched.
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = build_parser().parse_args(argv)
    args.extra = extra
    try:
        code: int = args.func(args)
    except Exception as exc:
        error = _as_dms_error(exc)
        if error is None:
            raise  # a bug: its traceback is what a report needs
        _print_error(error)
        return 1
    return code


def _as_dms_error(exc: BaseException) -> DmsError | None:
    """A DmsError, or a database error (the server's refusal) as one; None for a bug."""
    if isinstance(exc, DmsError):
        return exc
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return None
    from dms_pkg.db.faults import fault_of

    fault = fault_of(exc)
    assert fault is not None
    # The server's own errors from dms say "dms: ..."; ours prefix "dms: error:".
    return DmsError(fault.message.removeprefix("dms: "), sqlstate=fault.sqlstate or "XX000",
                    detail=fault.detail, hint=fault.hint)


def _print_error(exc: DmsError) -> None:
    print(f"dms: error: {exc.message}", file=sys.stderr)
    if exc.detail:
        print(f"DETAIL: {exc.detail}", file=sys.stderr)
    if exc.hint:
        print(f"HINT: {exc.hint}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
