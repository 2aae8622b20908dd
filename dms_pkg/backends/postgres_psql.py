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

A worker keeps one psql for all its chunks (``PsqlSession``): one process,
one login and -- for a run with a snapshot -- one ``SET TRANSACTION
SNAPSHOT``, instead of a process, a login and an import per chunk.  psql
reads the chunks' statements from its stdin; each chunk's COPY output goes
through ``\\o`` to a FIFO the worker reads until psql closes it, and an
``\\echo`` marker on psql's own stdout says the COPY ended well.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db import interrupts

BLOCK = 1 << 18  # bytes per read from psql's stdout
# A pipe holds 64 KiB by default, so a worker read at most that much per
# wake-up and handed it on in as small a write.  Widened, a read takes a whole
# BLOCK (strace of a worker: 364 of 385 reads in two seconds were 256 KiB).
# Measured on the 2M-row cross-database benchmark, 2 workers, 8 runs each,
# alternated with the old code: the workers' Python 1.17-1.51 CPU-seconds
# before, 0.96-1.24 after; the wall time moved within this VM's noise.
PIPE_SIZE = 1 << 20
CLOSE_WAIT = 2.0  # seconds a psql gets to cancel its query and end before it is killed
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


def _launch(psql: str, session: SourceSession) -> tuple[list[str], dict[str, str]]:
    """psql's arguments (no statements yet) and environment for ``session``:
    the password in the environment, never on a command line."""
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
    return args, env


def _failure(text: str, code: int | None) -> SourceError:
    """The error psql reported on stderr (``text``), as a SourceError."""
    found = _ERROR.search(text)
    sqlstate, message = (found.group(1), found.group(2).strip()) if found else (
        None, text.strip().splitlines()[0] if text.strip() else f"psql exited {code}")
    if re.search(r"^STATEMENT:\s+SET TRANSACTION SNAPSHOT", text, re.MULTILINE):
        return SnapshotImportError(message, sqlstate)
    return SourceError(message, sqlstate)


def widen(fd: int) -> None:
    """Give the pipe (or FIFO) ``fd`` PIPE_SIZE bytes where the kernel allows
    it (``fs.pipe-max-size``); where not, it keeps its size."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


@contextmanager
def copy_out(psql: str, session: SourceSession, copy_sql: str, snapshot: str | None
             ) -> Iterator[Iterator[bytes]]:
    """Yield the blocks of ``copy_sql``'s output; raise SourceError if psql failed.

    The check happens when the caller has read everything and leaves the
    block, before it commits the target.
    """
    args, env = _launch(psql, session)
    for statement in _commands(copy_sql, snapshot):
        args += ["-c", statement]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errors, env=env)
        assert proc.stdout is not None
        stdout = proc.stdout

        widen(stdout.fileno())

        def blocks() -> Iterator[bytes]:
            while data := interrupts.read(stdout.fileno(), BLOCK):
                yield data

        try:
            yield blocks()
            code = proc.wait()
        except BaseException:
            _end_psql(proc)  # cancels its query first (see there)
            proc.wait()
            raise
        finally:
            stdout.close()
        if code != 0:
            errors.seek(0)
            raise _failure(errors.read().decode("utf-8", "replace"), code)


# Text psql itself would act on when it reads a statement from stdin rather
# than from -c: a backslash (a meta-command, inside a statement too) or a
# colon before a name or quote (variable interpolation).  A chunk whose
# statement holds one goes through its own one-shot psql (``copy_out``).
_PSQL_SYNTAX = re.compile(r"\\|(?<!:):(?=[A-Za-z_'\"{])")


def streamable(copy_sql: str) -> bool:
    """Whether ``copy_sql`` reaches the server unchanged through a PsqlSession."""
    return _PSQL_SYNTAX.search(copy_sql) is None


_DIR_PREFIX = "dms-psql-"


def _remove_stale_dirs() -> None:
    """Remove the FIFO folders of processes that are gone (see ``_start``)."""
    pattern = os.path.join(tempfile.gettempdir(), f"{_DIR_PREFIX}*-*")
    for path in glob.glob(pattern):
        owner = os.path.basename(path)[len(_DIR_PREFIX):].split("-", 1)[0]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # alive, but another user's: not ours to judge
            continue


def _end_psql(proc: subprocess.Popen[bytes]) -> None:
    """End a psql that may be running a chunk's query.

    Killed outright, psql would leave that query running on the server --
    with its snapshot and locks -- until the query next writes to the dead
    client, which a sort or a slow scan does not do for a long time.  SIGINT
    makes psql send the server a cancel; the end of its input then ends it
    (at once when it is idle; after the cancelled query, ON_ERROR_STOP).
    Killed only if it does not end within ``CLOSE_WAIT``."""
    with contextlib.suppress(OSError):  # it ended meanwhile, or its stdin is broken
        proc.send_signal(signal.SIGINT)
        if proc.stdin is not None:
            proc.stdin.close()
    try:
        proc.wait(timeout=CLOSE_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()


class PsqlSession:
    """One psql process that runs a worker's chunks one after another.

    The process logs in once.  With a snapshot, the first chunk opens a
    REPEATABLE READ transaction and imports it, and every later chunk of the
    same snapshot reads in that transaction: no per-chunk process, login or
    import.  Without one, each chunk is its own READ ONLY transaction.  A
    failing statement ends psql (ON_ERROR_STOP): the error is read from its
    stderr, and the next chunk starts a new process.
    """

    def __init__(self, psql: str, session: SourceSession) -> None:
        self.psql = psql
        self.session = session
        self._proc: subprocess.Popen[bytes] | None = None
        self._errors: IO[bytes] | None = None
        self._dir: str | None = None
        self._snapshot: str | None = None  # the snapshot of the open transaction
        self._pending = b""  # what psql wrote to stdout after the last marker
        self.backend_pid: int | None = None

    def usable(self) -> bool:
        return self._proc is None or self._proc.poll() is None

    def _start(self) -> subprocess.Popen[bytes]:
        self.close()
        args, env = _launch(self.psql, self.session)
        _remove_stale_dirs()
        # Named after this process: a worker backend terminated with FATAL runs
        # no cleanup, and the next one to start removes what it left.
        self._dir = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-")
        os.mkfifo(os.path.join(self._dir, "copy"), 0o600)
        # Kept open for the process's life: its errors are read when it ends.
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        # -A -t: the backend pid comes back as a bare line.
        self._proc = subprocess.Popen([*args, "-A", "-t"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._errors, env=env)
        self._snapshot = None
        self._pending = b""
        self._send("SELECT pg_catalog.pg_backend_pid();\n")
        line = self._line()
        self.backend_pid = int(line) if line.strip().isdigit() else None
        return self._proc

    def _send(self, text: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(text.encode())
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise self._ended() from None

    def _line(self) -> str:
        """The next line psql writes to its stdout (raises if psql ended)."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            data = interrupts.read(fd, 4096)
            if not data:
                raise self._ended()
            self._pending += data
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", "replace")

    def _ended(self) -> SourceError:
        """psql is gone: its error, and nothing kept of this process."""
        assert self._proc is not None and self._errors is not None
        code = self._proc.wait()
        self._errors.seek(0)
        error = _failure(self._errors.read().decode("utf-8", "replace"), code)
        self.close()
        return error

    @contextmanager
    def copy(self, copy_sql: str, snapshot: str | None) -> Iterator[Iterator[bytes]]:
        """Yield the blocks of ``copy_sql``'s output; raise SourceError if it failed.

        As ``copy_out``: the marker is awaited when the caller has read every
        block and leaves, before it commits the target."""
        proc = self._proc if self.usable() and self._proc is not None else self._start()
        assert self._dir is not None and proc.stdout is not None
        fifo = os.path.join(self._dir, "copy")
        marker = f"dms-chunk-{uuid.uuid4().hex}"
        statements: list[str] = []
        if self._snapshot is not None and self._snapshot != snapshot:
            statements.append("COMMIT;")
            self._snapshot = None
        if snapshot and self._snapshot is None:
            statements += _commands("", snapshot)[:2]
            statements = [s if s.endswith(";") else s + ";" for s in statements]
            self._snapshot = snapshot
        elif not snapshot:
            statements.append("BEGIN READ ONLY;")
        # The fifo's name is ours (mkdtemp): nothing in it needs quoting.
        statements += [f"\\o {fifo}", copy_sql + ";", "\\o"]
        if not snapshot:
            statements.append("COMMIT;")
        statements.append(f"\\echo {marker}")
        # Opened before the statements are sent, without waiting for psql: psql
        # opens the FIFO (\\o) before it has read the whole statement, and with
        # no reader it would wait there while this process waits for it to
        # take the rest of a statement longer than the pipe (64 KiB) -- both
        # forever.  A FIFO no writer has opened yet reports no hang-up, so the
        # poll below waits for psql's data, its close, or its exit (stdout ends).
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        widen(reader)
        clean = False
        try:
            self._send("\n".join(statements) + "\n")
            yield self._blocks(reader, proc.stdout.fileno())
            if self._line() != marker:
                raise SourceError("psql answered out of turn", None)
            clean = True
        finally:
            os.close(reader)
            if not clean:
                self.close()  # mid-COPY or failed: this process is of no more use

    def _blocks(self, reader: int, stdout: int) -> Iterator[bytes]:
        poller = select.poll()
        poller.register(reader, select.POLLIN | select.POLLHUP | select.POLLERR)
        poller.register(stdout, select.POLLHUP | select.POLLERR)
        while True:
            events = dict(poller.poll(int(interrupts.SLICE * 1000)))
            if not events:
                interrupts.check()
                # A psql that ended before it opened the file, and whose
                # hang-up was seen too early to tell (below): nothing will
                # ever write to the FIFO.
                if self._proc is not None and self._proc.poll() is not None:
                    raise self._ended()
                continue
            if events.get(reader, 0) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                try:
                    data = os.read(reader, BLOCK)
                except BlockingIOError:
                    continue
                if not data:
                    return  # psql closed the file: the COPY ended (well or not)
                yield data
            elif stdout in events:
                # psql closed its stdout: it is ending, before it opened the
                # file (a failed BEGIN or import).  The hang-up can come a
                # moment before the process can be reaped, so it is waited
                # for (_ended), not polled: a poll here once read "still
                # running", and the worker then waited for the FIFO forever.
                raise self._ended()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                _end_psql(proc)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    # stdin's unsent rest to a psql that is gone cannot be flushed
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._errors is not None:
            self._errors.close()
            self._errors = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._snapshot = None
        self.backend_pid = None
