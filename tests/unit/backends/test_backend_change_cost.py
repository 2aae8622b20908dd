"""The cost of a source database is its backend modules, nothing else.

SQLite lives in ``dms_pkg/backends/sqlite.py``, ``sqlite_types.py`` and
``sqlite_chunking.py`` (its chunk dialect, catalog and planner connection).
Run in a fresh interpreter with those three modules made unimportable, the
runtime, the loaders, the queue and the planner still import and serve the
other databases, and SQLite alone is refused with the registry's message;
with them, SQLite is a source like the others.  So a commit adding SQLite
touches those modules (plus tests and docs), and no file of the engine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

SQLITE_MODULES = ("dms_pkg.backends.sqlite", "dms_pkg.backends.sqlite_types",
                  "dms_pkg.backends.sqlite_chunking")

PROBE = textwrap.dedent("""
    import importlib, json, sys
    for name in sys.argv[1:]:
        sys.modules[name] = None  # import of it raises ImportError
    engine = ["dms_pkg.engine.api", "dms_pkg.engine.coordinator", "dms_pkg.engine.worker",
              "dms_pkg.engine.drive", "dms_pkg.engine.store", "dms_pkg.engine.local_store",
              "dms_pkg.engine.merge", "dms_pkg.engine.target", "dms_pkg.engine.movers",
              "dms_pkg.engine.planning", "dms_pkg.chunking.planner", "dms_pkg.db.sources"]
    for name in engine:
        importlib.import_module(name)
    from dms_pkg.backends.base import backend_for, registered
    from dms_pkg.chunking.dialects import allowed_dialects, get_dialect
    from dms_pkg.errors import DmsError
    out = {"dbtyps": sorted(registered()), "dialects": allowed_dialects()}
    try:
        backend_for("SQLITE")
        out["backend"] = "found"
    except DmsError as exc:
        out["backend"] = [exc.sqlstate, exc.message]
    try:
        out["dialect"] = get_dialect("sqlite").NAME
    except DmsError as exc:
        out["dialect"] = [exc.sqlstate, exc.message.split(";")[0]]
    print(json.dumps(out))
""")


def _probe(*blocked: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", PROBE, *blocked], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_the_sqlite_modules_the_engine_runs_and_only_sqlite_is_refused() -> None:
    out = _probe(*SQLITE_MODULES)
    assert "SQLITE" not in out["dbtyps"]
    assert {"POSTGRESQL", "MYSQL", "MARIADB"} <= set(out["dbtyps"])
    assert "sqlite" not in out["dialects"]
    assert {"postgres", "mysql", "oracle"} <= set(out["dialects"])
    assert out["backend"] == ["0A000", "no source backend reads SQLITE databases"]
    assert out["dialect"] == ["22023", 'unknown SQL dialect "sqlite"']


def test_with_them_sqlite_is_a_source_like_the_others() -> None:
    out = _probe()
    assert "SQLITE" in out["dbtyps"]
    assert "sqlite" in out["dialects"]
    assert out["backend"] == "found"
    assert out["dialect"] == "sqlite"
