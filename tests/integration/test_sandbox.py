"""The setup path is idempotent: a second run changes nothing and starts nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import Cluster

ROOT = Path(__file__).resolve().parents[2]


def _postmasters(pgdata: Path) -> list[str]:
    """PIDs of postgres processes started with -D <pgdata> (the postmaster only)."""
    # -ww: unlimited width.  Without it ps cuts lines at 80 columns when its
    # output is a pipe, and a data directory under /var/lib/dms_pkg/... (a
    # clone the server user cannot enter) falls off the end.
    out = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True,
                         check=True)
    return [
        line.split()[0]
        for line in out.stdout.splitlines()
        if "postgres" in line and f"-D {pgdata}" in line
    ]


def test_setup_script_twice_does_nothing_the_second_time(cluster: Cluster) -> None:
    if cluster.sandbox is None:
        pytest.skip("DMS_TEST_DSN points at an external server: the sandbox is not in use")
    box = cluster.sandbox
    pid_before = box.running_pid()
    assert pid_before is not None
    assert len(_postmasters(box.pgdata)) == 1

    runs = [
        subprocess.run(["bash", str(ROOT / "scripts/setup.sh")], capture_output=True,
                       text=True, check=True)
        for _ in range(2)
    ]

    for done in runs:
        lines = done.stdout.splitlines()
        assert "setup: Debian packages present" in lines
        assert "setup: .venv up to date" in lines
        assert f"setup: cluster in {box.pgdata} already initialised" in lines
        assert any(line.endswith("is up to date") for line in lines), lines
        assert f"setup: already running (pid {pid_before}, port {box.port})" in lines
        assert not any(
            word in done.stdout for word in ("initialised a", "started the", "restarted", "wrote")
        ), done.stdout
    assert box.running_pid() == pid_before
    assert _postmasters(box.pgdata) == [str(pid_before)]
