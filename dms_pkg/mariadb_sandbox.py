"""The project's own MariaDB server, beside the PostgreSQL sandbox.

MySQL/MariaDB is a source dialect dms_pkg must split correctly, so the tests
need a real server.  Like the PostgreSQL sandbox it lives under ``$DMS_HOME``
(``mariadb/``: data, socket, pid, error log, temporary files, its own
my.cnf), listens on 127.0.0.1 only, and every operation is idempotent.
Authentication is by unix socket (the OS user that runs the tests is the
MariaDB account), so no password exists anywhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError
from dms_pkg.ports import first_free_port

DEFAULT_PORT = 53307
SERVER_USER = "mysql"


def _program(name: str) -> str | None:
    return shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


@dataclass(frozen=True)
class MariaDBSandbox:
    home: Path  # the shared sandbox folder ($DMS_HOME)

    @property
    def base(self) -> Path:
        return self.home / "mariadb"

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def rundir(self) -> Path:
        return self.base / "run"

    @property
    def tmpdir(self) -> Path:
        # Not /tmp: a MariaDB server deletes every #sql* file in its tmpdir when
        # it starts, so a second sandbox's server starting there removed the
        # first one's temporary tables under a running query (seen in CI:
        # "Error on delete of '/tmp/#sql-temptable-....MAI'").
        return self.base / "tmp"

    @property
    def socket(self) -> Path:
        return self.rundir / "mariadb.sock"

    @property
    def pidfile(self) -> Path:
        return self.rundir / "mariadb.pid"

    @property
    def cnf(self) -> Path:
        return self.base / "my.cnf"

    @property
    def port(self) -> int:
        if self.cnf.is_file():
            for line in self.cnf.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "port":
                    return int(value.strip())
        env = os.environ.get("DMS_MARIADB_PORT")
        return int(env) if env else first_free_port(DEFAULT_PORT)

    @staticmethod
    def available() -> bool:
        return _program("mariadbd") is not None and _program("mariadb-install-db") is not None

    def connect_args(self, database: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``pymysql.connect`` (socket auth, no password)."""
        import getpass

        args: dict[str, object] = {"unix_socket": str(self.socket), "user": getpass.getuser()}
        if database:
            args["database"] = database
        return args

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def _cnf_text(self) -> str:
        return (
            "# Written by 'dms sandbox start'; edits are overwritten.\n"
            "[mariadbd]\n"
            f"datadir = {self.datadir}\n"
            f"socket = {self.socket}\n"
            f"port = {self.port}\n"
            "bind-address = 127.0.0.1\n"
            f"pid-file = {self.pidfile}\n"
            f"tmpdir = {self.tmpdir}\n"
            f"log-error = {self.rundir / 'mariadb.err'}\n"
            "skip-log-bin\n"
            "innodb_buffer_pool_size = 512M\n"
            "innodb_flush_log_at_trx_commit = 2\n"
            "max_allowed_packet = 256M\n"
            "character-set-server = utf8mb4\n"
            "collation-server = utf8mb4_bin\n"
            "[client]\n"
            f"socket = {self.socket}\n"
        )

    def start(self) -> list[str]:
        if not self.available():
            raise DmsError(
                "MariaDB server programs are not installed",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint="apt-get install mariadb-server mariadb-client (scripts/setup.sh does it)",
            )
        done: list[str] = []
        as_root = os.geteuid() == 0
        for folder in (self.base, self.datadir, self.rundir, self.tmpdir):
            folder.mkdir(parents=True, exist_ok=True)
            if as_root:
                shutil.chown(folder, SERVER_USER, SERVER_USER)
        wanted = self._cnf_text()
        if not self.cnf.is_file() or self.cnf.read_text() != wanted:
            self.cnf.write_text(wanted)
            done.append(f"wrote {self.cnf}")
        user = SERVER_USER if as_root else _current_user()
        if not (self.datadir / "mysql").is_dir():
            result = subprocess.run(
                [str(_program("mariadb-install-db")), f"--defaults-file={self.cnf}",
                 f"--user={user}", "--skip-test-db"],
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                raise DmsError(
                    f"mariadb-install-db failed for {self.datadir}",
                    sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                    detail=(result.stderr or result.stdout).strip()[-2000:],
                )
            done.append(f"initialised a MariaDB data directory in {self.datadir}")
        pid = self.running_pid()
        if pid is not None:
            done.append(f"MariaDB already running (pid {pid}, port {self.port})")
            return done
        with open(self.rundir / "mariadbd.out", "ab") as out:
            # mariadbd drops to --user itself; a new session detaches it from us.
            subprocess.Popen(
                [str(_program("mariadbd")), f"--defaults-file={self.cnf}", f"--user={user}"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.running_pid() is not None and self.socket.exists() and self._ping():
                done.append(f"started MariaDB on port {self.port}, socket {self.socket}")
                return done
            time.sleep(0.2)
        err = self.rundir / "mariadb.err"
        tail = "\n".join(err.read_text(errors="replace").splitlines()[-15:]) if err.exists() else ""
        raise DmsError(
            "MariaDB did not start within 60 s",
            sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
            detail=tail,
            hint=f"see {err}",
        )

    def _ping(self) -> bool:
        admin = _program("mariadb-admin")
        if admin is None:
            return True
        done = subprocess.run(
            [admin, f"--defaults-file={self.cnf}", "ping"], capture_output=True, check=False
        )
        return done.returncode == 0

    def stop(self) -> list[str]:
        pid = self.running_pid()
        if pid is None:
            return ["MariaDB is not running"]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.running_pid() is not None:
            time.sleep(0.2)
        return [f"stopped MariaDB (was pid {pid})"]


def _current_user() -> str:
    import getpass

    return getpass.getuser()
