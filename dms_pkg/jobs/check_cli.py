"""What ``dms schema-diff``, ``dms profile`` and ``dms table-compare`` share on
the command line: the error report and exit code, ``--parallel``'s range,
the pair inputs and the progress bar (docs/schema-diff.md, "Exit codes")."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from dms_pkg.errors import INVALID_PARAMETER_VALUE, DmsError

ERROR_EXIT = 2  # 0: equal / done, 1: differences found, 2: the command could not run
MAX_PARALLEL = 64


def run_check(body: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``body(args)``; a DmsError is printed with its HINT and exits 2."""
    try:
        return body(args)
    except DmsError as exc:
        print(f"dms: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"HINT: {exc.hint}", file=sys.stderr)
        return ERROR_EXIT


def require_parallel(args: argparse.Namespace) -> None:
    if not 1 <= args.parallel <= MAX_PARALLEL:
        raise DmsError(f"--parallel must be from 1 to {MAX_PARALLEL}, not {args.parallel}",
                       sqlstate=INVALID_PARAMETER_VALUE, hint="for example --parallel 4")


def pair_texts(args: argparse.Namespace) -> list[str]:
    """The A:B pairs: the arguments, then ``--pairs-file`` (``-`` or piped: stdin)."""
    from dms_pkg.jobs.schema_diff.pairs import lines

    texts = [t for t in args.pairs if t.strip()]
    if args.pairs_file == "-" or (not texts and not args.pairs_file and not sys.stdin.isatty()):
        texts += lines(sys.stdin)
    elif args.pairs_file:
        try:
            with open(args.pairs_file, encoding="utf-8") as stream:
                texts += lines(stream)
        except OSError as exc:
            raise DmsError(f"cannot read --pairs-file {args.pairs_file}: {exc.strerror}",
                           sqlstate="58030", hint="give a readable file, or - for stdin") from None
    if not texts:
        raise DmsError("no pairs to compare", sqlstate=INVALID_PARAMETER_VALUE,
                       hint="give A:B pairs as arguments, in --pairs-file, or on stdin")
    return texts


def progress(args: argparse.Namespace, total: int, label: str) -> Callable[[Any], None]:
    """A callback advancing a rich bar on stderr per finished item (``--progress``)."""
    if not args.progress:
        return lambda result: None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    bar.start()

    def done(result: Any) -> None:
        bar.advance(task)
        if bar.finished:
            bar.stop()
    return done
