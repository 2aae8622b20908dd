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

from dms_pkg import __version__
from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError


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


def _cmd_demo(args: argparse.Namespace) -> int:
    from dms_pkg.demo import run_demo

    return run_demo(dbname=args.db)


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

    p = sub.add_parser("demo", help="run the end-to-end demo on the sandbox")
    p.add_argument("--db", default="dms_demo", help="demo database name")
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
    except DmsError as exc:
        print(f"dms: error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(f"DETAIL: {exc.detail}", file=sys.stderr)
        if exc.hint:
            print(f"HINT: {exc.hint}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
