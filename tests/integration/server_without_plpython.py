"""A real PostgreSQL 15 server on which plpython3u is not available.

We cannot uninstall the Debian package during a test run, so we start a
second, throwaway server from a relocated copy of the installation whose
extension folder lacks the plpython3u control files.  PostgreSQL finds its
share directory relative to its own executable, so this is exactly what a
server without the postgresql-plpython3-15 package looks like from SQL
(pg_available_extensions has no plpython3u).  Nothing is faked: the install
runs against this server over a normal connection.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dms_pkg.sandbox import SERVER_USER, pg_bindir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(args: list[str]) -> None:
    cmd = ["runuser", "-u", SERVER_USER, "--", *args] if os.geteuid() == 0 else args
    subprocess.run(cmd, check=True, capture_output=True)


@contextmanager
def server_without_plpython() -> Iterator[str]:
    bindir = pg_bindir()  # .../lib/postgresql/15/bin
    pg_root = bindir.parent  # .../lib/postgresql/15
    share = Path(f"/usr/share/postgresql/{pg_root.name}")
    # Not pytest's tmp_path: that is private to root, and the server runs as postgres.
    top = Path(tempfile.mkdtemp(prefix="dms-noplpy-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        new_bin = top / "usr/lib/postgresql" / pg_root.name / "bin"
        new_bin.mkdir(parents=True)
        for prog in ("postgres", "pg_ctl", "initdb"):
            shutil.copy2(bindir / prog, new_bin / prog)
        (new_bin.parent / "lib").symlink_to(pg_root / "lib")
        new_share = top / "usr/share/postgresql" / pg_root.name
        (new_share / "extension").mkdir(parents=True)
        for entry in share.iterdir():
            if entry.name != "extension":
                (new_share / entry.name).symlink_to(entry)
        for entry in (share / "extension").iterdir():
            if not entry.name.startswith("plpython3u"):
                (new_share / "extension" / entry.name).symlink_to(entry)
        for dirpath, _dirs, _files in os.walk(top):
            os.chmod(dirpath, 0o755)

        data = top / "data"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(data, SERVER_USER, SERVER_USER)
        port = _free_port()
        _as_server_user([str(new_bin / "initdb"), "-D", str(data / "pg"), "-U", "postgres",
                         "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
        _as_server_user([str(new_bin / "pg_ctl"), "-D", str(data / "pg"), "-w", "-l",
                         str(data / "log"), "-o",
                         f"-p {port} -k {data} -c listen_addresses=''", "start"])
        try:
            yield f"host={data} port={port} user=postgres dbname=postgres"
        finally:
            _as_server_user([str(new_bin / "pg_ctl"), "-D", str(data / "pg"), "-m",
                             "immediate", "stop"])
    finally:
        shutil.rmtree(top, ignore_errors=True)
