"""Read a chunk's COPY stream with a ``psql`` process instead of per-row Python.

libpq hands COPY data over one row per call, so a Python loop that reads
rows from the source and writes them to the target pays a few microseconds
per row -- on a two-core server as much CPU as the target needs to insert
them.  Here ``psql`` (C) reads the source and the worker only moves large
blocks from its stdout into the target's COPY: the data path has no per-row
Python, as DESIGN §3 asks.

The psql session does exactly what the psycopg reader would: connect (as the
caller, for a loopback to this server), pin the run's snapshot, run the
chunk's ``COPY (...) TO STDOUT``.  Its exit status is checked before the
target commits, so a source that fails midway never leaves a partial chunk.
Errors come back with their SQLSTATE (``VERBOSITY=verbose``).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db import interrupts

BLOCK = 1 << 18  # bytes per read from psql's stdout
# Connection keywords every libpq since PostgreSQL 12 knows: psycopg's own
# libpq may be newer and report more (say, sslcertmode), which an older psql
# refuses.
_PORTABLE = frozenset({
    "host", "hostaddr", "port", "dbname", "user", "passfile", "service", "options",
    "connect_timeout", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl",
    "sslcompression", "requirepeer", "gssencmode", "krbsrvname", "gsslib",
    "target_session_attrs", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "client_encoding", "channel_binding",
})
_ERROR = re.compile(r"^(?:psql:.*?: )?(?:ERROR|FATAL):\s+([0-9A-Z]{5}): (.*)$", re.MULTILINE)


class SourceError(Exception):
    """The source side of a chunk failed; carries the server's SQLSTATE when it sent one."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class SnapshotImportError(SourceError):
    """SET TRANSACTION SNAPSHOT failed: the run's snapshot is gone."""


def find_psql() -> str | None:
    """The psql to use: $DMS_PSQL, the newest server-version psql, or psql on PATH
    (Debian's /usr/bin/psql is a Perl wrapper: slower to start, still fine)."""
    explicit = os.environ.get("DMS_PSQL")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if versions:
        return versions[-1]
    return shutil.which("psql")


def _options(search_path: str | None) -> str | None:
    """libpq ``options`` setting search_path.

    The server splits ``options`` at any white space and takes a backslash
    as "the next character is literal": every one of them is escaped, so a
    search_path cannot smuggle in a second ``-c`` setting.
    """
    if not search_path:
        return None
    value = "".join(f"\\{ch}" if ch.isspace() or ch == "\\" else ch for ch in search_path)
    return f"-c search_path={value}"


@dataclass(frozen=True)
class SourceSession:
    """How the psql process connects (as the login its conninfo names) and where
    unqualified names resolve."""

    info: Endpoint
    search_path: str | None
    application_name: str | None


def _commands(copy_sql: str, snapshot: str | None) -> list[str]:
    statements = []
    if snapshot:
        statements.append("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        statements.append(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(
            sql.Literal(snapshot)).as_string(None))
    else:
        statements.append("BEGIN READ ONLY")
    statements.append(copy_sql)
    statements.append("COMMIT")
    return statements


@contextmanager
def copy_out(psql: str, session: SourceSession, copy_sql: str, snapshot: str | None
             ) -> Iterator[Iterator[bytes]]:
    """Yield the blocks of ``copy_sql``'s output; raise SourceError if psql failed.

    The check happens when the caller has read everything and leaves the
    block, before it commits the target.
    """
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    kwargs = session.info.connect_kwargs()
    if "password" in kwargs:
        env["PGPASSWORD"] = kwargs["password"]
    if session.application_name:
        env["PGAPPNAME"] = session.application_name
    parts = {k: v for k, v in conninfo_to_dict(kwargs["conninfo"]).items() if k in _PORTABLE}
    options = _options(session.search_path)
    if options:
        parts["options"] = options
    conninfo = make_conninfo("", **{k: str(v) for k, v in parts.items()})
    # VERBOSITY=verbose: errors carry their SQLSTATE; ECHO=errors: psql names
    # the statement that failed, which tells a lost snapshot from a bad query;
    # -w: never prompt for a password (a missing one is an error, not a hang).
    args = [psql, "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
            "-v", "ECHO=errors", "-d", conninfo]
    for statement in _commands(copy_sql, snapshot):
        args += ["-c", statement]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errors, env=env)
        assert proc.stdout is not None
        stdout = proc.stdout

        def blocks() -> Iterator[bytes]:
            while data := interrupts.read(stdout.fileno(), BLOCK):
                yield data

        try:
            yield blocks()
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            stdout.close()
        if code != 0:
            errors.seek(0)
            text = errors.read().decode("utf-8", "replace")
            found = _ERROR.search(text)
            sqlstate, message = (found.group(1), found.group(2).strip()) if found else (
                None, text.strip().splitlines()[0] if text.strip() else f"psql exited {code}")
            if re.search(r"^STATEMENT:\s+SET TRANSACTION SNAPSHOT", text, re.MULTILINE):
                raise SnapshotImportError(message, sqlstate)
            raise SourceError(message, sqlstate)
