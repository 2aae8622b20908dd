"""The project's own PostgreSQL 15 cluster: ``dms sandbox start|stop|status|url|psql``.

It lives under one folder (``$DMS_HOME``, by default ``.dms/`` in the
checkout): ``pgdata/`` (the cluster), ``run/`` (its socket), ``log/`` and
``pylib/`` (the server-side dms_pkg).  Every operation is idempotent: start
on a running sandbox reports what is there and changes nothing.

PostgreSQL refuses to run as root, so when we are root the server commands
run as the ``postgres`` OS user; as any other user they run as that user.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dms_pkg import pylib
from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError
from dms_pkg.install.bundle import PYTHON_LIB_DIR_GUC
from dms_pkg.mariadb_sandbox import MariaDBSandbox
from dms_pkg.ports import first_free_port
from dms_pkg.resources import source_root

PG_MAJOR = 15
DEFAULT_PORT = 55433
SERVER_USER = "postgres"
CONF_FILE = "dms_sandbox.conf"

# Settings for bulk loads on a small machine (2 cores, 24 GiB); the values
# follow the anchor benchmark's cluster so numbers are comparable.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    # Local logins are trusted (workers log in as their caller over the
    # socket, docs/roles.md "Trust model"): only the server's OS user (and
    # root) may reach the socket.
    "unix_socket_permissions": "0700",
    "max_connections": "100",
    "shared_buffers": "'1GB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    # Off, as in the anchor's cluster (PostgreSQL's default).  "on" is pglz,
    # which the writing backend runs on every full-page image: a reload that
    # updates rows after a checkpoint spent 45 % of its time in it (a 97K-row
    # SCD2 chunk 0.9 s against 0.5 s off, 0.55 s with lz4).
    "wal_compression": "off",
    "shared_preload_libraries": "'pg_cron'",
    "cron.database_name": "'postgres'",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


def pg_bindir() -> Path:
    return Path(os.environ.get("DMS_PG_BINDIR", f"/usr/lib/postgresql/{PG_MAJOR}/bin"))


def _can_reach(path: Path, user: str) -> bool:
    """Whether OS user ``user`` can traverse every parent of ``path``."""
    if os.geteuid() != 0:
        return True
    probe = path if path.exists() else path.parent
    done = subprocess.run(
        ["runuser", "-u", user, "--", "test", "-x", str(probe)],
        capture_output=True, check=False,
    )
    return done.returncode == 0


def default_home() -> Path:
    """``$DMS_HOME``, else ``.dms/`` in the checkout, else a per-user folder.

    When we are root and the checkout sits where the postgres user cannot go
    (under /root, say), the cluster moves to /var/lib/dms_pkg/<hash> instead:
    a data directory the server cannot reach would only fail later, less
    clearly.
    """
    env = os.environ.get("DMS_HOME")
    if env:
        return Path(env).resolve()
    root = source_root()
    home = root / ".dms" if root else Path.home() / ".local" / "share" / "dms_pkg"
    if not _can_reach(home, SERVER_USER):
        tag = hashlib.sha256(str(home).encode()).hexdigest()[:10]
        home = Path("/var/lib/dms_pkg") / f"sandbox-{tag}"
    return home


@dataclass(frozen=True)
class Sandbox:
    home: Path

    @classmethod
    def default(cls) -> Sandbox:
        return cls(default_home())

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def sockdir(self) -> Path:
        return self.home / "run"

    @property
    def logfile(self) -> Path:
        return self.home / "log" / "postgresql.log"

    @property
    def pylib_root(self) -> Path:
        return self.home / "pylib"

    @property
    def port(self) -> int:
        """The port in the cluster's config.

        For a new cluster: $DMS_SANDBOX_PORT, else the first free port from 55433.
        """
        conf = self.pgdata / CONF_FILE
        if conf.is_file():
            for line in conf.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "port":
                    return int(value.split("#")[0].strip())
        env = os.environ.get("DMS_SANDBOX_PORT")
        return int(env) if env else first_free_port(DEFAULT_PORT)

    def dsn(self, dbname: str = "postgres", user: str = SERVER_USER) -> str:
        return f"host={self.sockdir} port={self.port} dbname={dbname} user={user}"

    def url(self, dbname: str = "postgres", user: str = SERVER_USER) -> str:
        return f"postgresql://{user}@/{dbname}?host={self.sockdir}&port={self.port}"

    # ------------------------------------------------------------ commands
    def _as_server_user(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", SERVER_USER, "--", *args] if os.geteuid() == 0 else args
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def _require_binaries(self) -> None:
        bindir = pg_bindir()
        missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (bindir / b).is_file()]
        if missing:
            raise DmsError(
                f"PostgreSQL {PG_MAJOR} server programs are missing from {bindir}: "
                + ", ".join(missing),
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint=f"run scripts/setup.sh, or apt-get install postgresql-{PG_MAJOR} "
                f"postgresql-plpython3-{PG_MAJOR} postgresql-{PG_MAJOR}-cron",
            )
        libdir = bindir.parent / "lib"
        for lib, package in (
            ("plpython3.so", f"postgresql-plpython3-{PG_MAJOR}"),
            ("pg_cron.so", f"postgresql-{PG_MAJOR}-cron"),
        ):
            if not (libdir / lib).is_file():
                raise DmsError(
                    f"{lib} is missing from {libdir}",
                    sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                    hint=f"apt-get install {package}",
                )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise DmsError(
                    f"OS user {SERVER_USER} does not exist; PostgreSQL refuses to run as root",
                    sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                    hint=f"apt-get install postgresql-{PG_MAJOR} creates it",
                ) from None

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(path, SERVER_USER, SERVER_USER)
        os.chmod(path, mode)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One sandbox operation at a time, so two starts never race to initdb."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o755)  # noqa: S103 -- the server user must traverse it
        with open(self.home / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def running_pid(self) -> int | None:
        if not self.initialized():
            return None
        done = self._as_server_user([str(pg_bindir() / "pg_ctl"), "-D", str(self.pgdata), "status"])
        if done.returncode != 0:
            return None
        pidfile = self.pgdata / "postmaster.pid"
        try:
            return int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _conf_text(self) -> str:
        settings = dict(_SETTINGS)
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = f"'{self.sockdir}'"
        # pg_cron connects like a client: through the socket, where the
        # sandbox trusts local logins (TCP asks for a password).
        settings["cron.host"] = f"'{self.sockdir}'"
        settings[PYTHON_LIB_DIR_GUC] = f"'{self.pylib_root}'"
        lines = [
            "# Written by 'dms sandbox start'; edits are overwritten.",
            *(f"{k} = {v}" for k, v in settings.items()),
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> list[str]:
        """Create, configure and start the sandbox as needed; return what was done."""
        self._require_binaries()
        done: list[str] = []
        with self._lock():
            self._own(self.sockdir, 0o755)
            self._own(self.logfile.parent, 0o755)
            if not self.initialized():
                self._own(self.pgdata, 0o700)
                result = self._as_server_user([
                    str(pg_bindir() / "initdb"), "-D", str(self.pgdata), "-U", SERVER_USER,
                    "--auth-local=trust", "--auth-host=scram-sha-256",
                    "-E", "UTF8", "--locale=C.UTF-8",
                ])
                if result.returncode != 0:
                    raise DmsError(
                        f"initdb failed for {self.pgdata}",
                        sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                        detail=(result.stderr or result.stdout).strip()[-2000:],
                    )
                with open(self.pgdata / "postgresql.conf", "a") as fh:
                    fh.write(f"\ninclude_if_exists = '{CONF_FILE}'\n")
                done.append(f"initialised a PostgreSQL {PG_MAJOR} cluster in {self.pgdata}")
            else:
                done.append(f"cluster in {self.pgdata} already initialised")

            conf = self.pgdata / CONF_FILE
            wanted = self._conf_text()
            conf_changed = not conf.is_file() or conf.read_text() != wanted
            if conf_changed:
                conf.write_text(wanted)
                if os.geteuid() == 0:
                    shutil.chown(conf, SERVER_USER, SERVER_USER)
                done.append(f"wrote {conf}")

            done.append(pylib.ensure(self.pylib_root))

            pid = self.running_pid()
            if pid is not None and conf_changed:
                self._pg_ctl("restart")
                done.append(f"restarted the server for the new settings (port {self.port})")
            elif pid is not None:
                done.append(f"already running (pid {pid}, port {self.port})")
            else:
                self._pg_ctl("start")
                done.append(f"started the server on port {self.port}, socket {self.sockdir}")
            done.extend(self._start_mariadb())
        return done

    @property
    def mariadb(self) -> MariaDBSandbox:
        return MariaDBSandbox(self.home)

    def _start_mariadb(self) -> list[str]:
        if os.environ.get("DMS_SANDBOX_MARIADB", "1") == "0":
            return []
        if not MariaDBSandbox.available():
            return ["MariaDB not installed (apt-get install mariadb-server): MySQL-dialect "
                    "tests will fail"]
        return self.mariadb.start()

    def _pg_ctl(self, action: str) -> None:
        result = self._as_server_user([
            str(pg_bindir() / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile),
            "-w", "-t", "120", *(["-m", "fast"] if action in ("stop", "restart") else []),
            action,
        ])
        if result.returncode != 0:
            tail = ""
            if self.logfile.is_file():
                tail = "\n".join(self.logfile.read_text(errors="replace").splitlines()[-15:])
            raise DmsError(
                f"pg_ctl {action} failed for the sandbox in {self.pgdata}",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                detail=((result.stderr or result.stdout).strip() + "\n" + tail).strip(),
                hint=f"is port {self.port} taken by another server? set DMS_SANDBOX_PORT "
                "before the first start, or see the log above",
            )

    def stop(self) -> list[str]:
        with self._lock():
            done = self.mariadb.stop() if MariaDBSandbox.available() else []
            pid = self.running_pid()
            if pid is None:
                return ["sandbox is not running", *done]
            self._pg_ctl("stop")
            return [f"stopped the server (was pid {pid})", *done]

    def status(self) -> dict[str, object]:
        pid = self.running_pid()
        return {
            "home": str(self.home),
            "initialised": self.initialized(),
            "running": pid is not None,
            "pid": pid,
            "port": self.port,
            "socket_dir": str(self.sockdir),
            "dsn": self.dsn(),
            "python_lib_dir": str(self.pylib_root),
            "log": str(self.logfile),
            "mariadb_running": self.mariadb.running_pid() is not None,
            "mariadb_socket": str(self.mariadb.socket),
        }
