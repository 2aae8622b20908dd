"""``dms report``: the picture of a real run, its HTML page and its JSON; ``dms watch``
says where the picture is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory

pytest.importorskip("matplotlib", reason="the report extra (scripts/setup.sh installs it)")


def dms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dms_pkg.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1"}, check=False)


@pytest.fixture(scope="module")
def run(cluster: Cluster, databases: DatabaseFactory) -> tuple[str, int, int]:
    """A finished 2-worker run: (dsn, run id, its chunks)."""
    db = databases.create(installed=True)
    with psycopg.connect(cluster.dsn(db), autocommit=True) as conn:
        conn.execute("CREATE TABLE src AS SELECT g AS id, md5(g::text) AS note"
                     " FROM generate_series(1, 60000) g")
        conn.execute("ALTER TABLE src ADD PRIMARY KEY (id)")
        conn.execute("ANALYZE src")
        conn.execute("CREATE TABLE dst (LIKE src)")
        row = conn.execute(
            "CALL dms.execute_query_parallel(NULL, 'SELECT id, note FROM src', NULL, 'public',"
            " 'dst', '{\"max_workers\": 2, \"chunk_size\": 5000, \"min_rows_for_parallel\": 0}'"
            "::jsonb)").fetchone()
        assert row is not None
        chunks = conn.execute("SELECT count(*) FROM dms.chunk WHERE run_id = %s",
                              [row[0]]).fetchone()
    assert chunks is not None and chunks[0] >= 10
    return cluster.dsn(db), int(row[0]), int(chunks[0])


def test_the_picture_has_a_bar_for_every_chunk(run: tuple[str, int, int], tmp_path: Path
                                               ) -> None:
    import matplotlib.image

    dsn, run_id, chunks = run
    page = tmp_path / "run.html"
    done = dms("report", str(run_id), "--dsn", dsn, "--out", str(tmp_path), "--html", str(page))
    assert done.returncode == 0, done.stderr
    png, svg = tmp_path / f"run-{run_id}.png", tmp_path / f"run-{run_id}.svg"
    assert done.stdout.split() == [str(png), str(svg), str(page)]
    assert matplotlib.image.imread(png).shape[:2] == (600, 1200)
    ids = set(re.findall(r'id="chunk-(\d+)"', svg.read_text()))
    assert ids == {str(n) for n in range(1, chunks + 1)}
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text
    assert f"<h1>dms run {run_id}</h1>" in text and "<th>state</th><td>SUCCEEDED</td>" in text
    assert len(re.findall(r'id="chunk-\d+"', text)) == chunks


def test_json_gives_the_run_and_every_chunk(run: tuple[str, int, int]) -> None:
    dsn, run_id, chunks = run
    done = dms("report", str(run_id), "--dsn", dsn, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["run"]["run_id"], data["run"]["state"], data["run"]["rows_done"]) == (
        run_id, "SUCCEEDED", 60000)
    assert [c["chunk_no"] for c in data["chunks"]] == list(range(1, chunks + 1))
    assert sum(c["rows"] for c in data["chunks"]) == 60000
    assert all(c["state"] == "DONE" and c["worker_pid"] for c in data["chunks"])
    # Which workers took chunks is the database's record (on a loaded machine
    # one worker may take them all before the other starts).
    with psycopg.connect(dsn) as conn:
        pids = {r[0] for r in conn.execute(
            "SELECT worker_pid FROM dms.chunk WHERE run_id = %s", [run_id])}
    assert {c["worker_pid"] for c in data["chunks"]} == pids and 1 <= len(pids) <= 2


def test_watch_says_where_the_picture_is(run: tuple[str, int, int], tmp_path: Path) -> None:
    dsn, run_id, _ = run
    done = dms("watch", str(run_id), "--dsn", dsn, "--report-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (f"picture of run {run_id}: {tmp_path / f'run-{run_id}.png'} "
            f"(and run-{run_id}.svg)") in done.stdout
    assert (tmp_path / f"run-{run_id}.png").stat().st_size > 10_000


def test_an_unknown_run_is_named(run: tuple[str, int, int]) -> None:
    done = dms("report", "999999", "--dsn", run[0])
    assert done.returncode == 1
    assert "dms: error: run 999999 does not exist" in done.stderr
