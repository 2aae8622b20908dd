"""A second, throwaway PostgreSQL server: "another server" for connection rows.

The test cluster holds every database the engine tests use, so a
DMS_DBCONDTLS row pointing at any of them points back at the engine's own
server.  What the engine must do with a connection to *another* server (for
instance refuse a superuser login for a non-superuser caller) needs a real
other server: initdb into a folder under /tmp (the server runs as the
postgres OS user, who cannot enter pytest's private tmp_path), started on its
own socket and port, stopped and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dms_pkg.sandbox import SERVER_USER, pg_bindir
from tests.integration.server_without_plpython import _as_server_user, _free_port


@contextmanager
def second_server() -> Iterator[tuple[str, int]]:
    """Yield (socket directory, port) of a fresh server that trusts local logins."""
    top = Path(tempfile.mkdtemp(prefix="dms-second-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        if os.geteuid() == 0:
            shutil.chown(top, SERVER_USER, SERVER_USER)
        port = _free_port()
        data = top / "pg"
        _as_server_user([str(pg_bindir() / "initdb"), "-D", str(data), "-U", "postgres",
                         "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
        _as_server_user([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-w", "-l",
                         str(top / "log"), "-o",
                         f"-p {port} -k {top} -c listen_addresses=''", "start"])
        try:
            yield str(top), port
        finally:
            _as_server_user([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m",
                             "immediate", "stop"])
    finally:
        shutil.rmtree(top, ignore_errors=True)
