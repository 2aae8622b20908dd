"""``--html`` of dms profile and dms table-compare, opened in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import Cluster, DatabaseFactory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser(*args: str) -> subprocess.CompletedProcess[str]:
    """Debian's chromium, headless (scripts/setup.sh installs it)."""
    assert CHROMIUM, "chromium is not installed: run scripts/setup.sh"
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", *args],
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture(scope="module")
def pg(cluster: Cluster, databases: DatabaseFactory) -> str:
    dsn = cluster.dsn(databases.create())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, amount numeric(8,2), made date,"
                     " note text)")
        conn.execute("INSERT INTO t SELECT g, g * 0.5, DATE '2024-01-01' + g,"
                     " CASE WHEN g % 4 = 0 THEN NULL ELSE '<b>' || g || '</b>' END"
                     " FROM generate_series(1, 500) g")
        conn.execute("CREATE TABLE u AS SELECT * FROM t")
        conn.execute("ALTER TABLE u ADD PRIMARY KEY (id)")
        conn.execute("UPDATE u SET note = 'x' WHERE id IN (5, 6)")
        conn.execute("DELETE FROM u WHERE id = 9")
    return dsn


def dms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dms_pkg.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120, stdin=subprocess.DEVNULL)


def test_the_profile_page_renders_a_histogram_per_number_and_date_column(
        pg: str, tmp_path: Path) -> None:
    page = tmp_path / "profile.html"
    done = dms("profile", "--dsn", pg, "public.t", "--no-store", "--html", str(page))
    assert done.returncode == 0, done.stderr
    dom = browser("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr
    charts = re.findall(r'<svg class="hist".*?</svg>', dom.stdout, flags=re.S)
    assert len(charts) == 3  # id, amount, made
    assert all(chart.count("<rect") == 10 for chart in charts)
    assert "&lt;b&gt;" in dom.stdout and "<b>" not in dom.stdout  # values are escaped
    shot = tmp_path / "profile.png"
    done = browser(f"--screenshot={shot}", "--window-size=1200,800", page.as_uri())
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr


def test_the_compare_page_lists_every_difference(pg: str, tmp_path: Path) -> None:
    page = tmp_path / "compare.html"
    done = dms("table-compare", "--dsn", pg, "public.t:public.u", "public.t:public.nope",
               "--html", str(page))
    assert done.returncode == 2, done.stderr
    dom = browser("--dump-dom", page.as_uri()).stdout
    only_in_a = re.search(r'<ul class="only_in_a">(.*?)</ul>', dom, flags=re.S)
    different = re.search(r'<ul class="different">(.*?)</ul>', dom, flags=re.S)
    assert only_in_a and re.findall(r"<code>(.*?)</code>", only_in_a.group(1)) == ["9"]
    assert different and re.findall(r"<code>(.*?)</code>", different.group(1)) == ["5", "6"]
    assert 'class="error">error<' in dom
    assert "table public.nope does not exist on the postgres side" in dom
