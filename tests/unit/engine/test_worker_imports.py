"""A worker session imports no parser.

Every ``CALL dms.work(run_id)`` starts in a fresh backend whose first job is
importing the engine; the chunks are planned and rendered before any worker
starts, so sqlglot (and the planner built on it) is dead weight there -- about
90 ms of the ~220 ms a worker spent importing before its first chunk.  This
runs the imports of a worker's whole path in a fresh interpreter and checks
the parser stayed out; the planner's side still has it.
"""

from __future__ import annotations

import subprocess
import sys

WORKER_PATH = ("dms_pkg.engine.server", "dms_pkg.engine.coordinator", "dms_pkg.engine.worker",
               "dms_pkg.engine.movers", "dms_pkg.engine.merge", "dms_pkg.engine.store",
               "dms_pkg.backends.postgres", "dms_pkg.backends.postgres_psql")
PARSER = ("sqlglot", "dms_pkg.chunking", "dms_pkg.engine.source_query",
          "dms_pkg.engine.planning")


def loaded_after(modules: tuple[str, ...]) -> set[str]:
    script = ("import importlib, sys\n"
              f"for name in {modules!r}: importlib.import_module(name)\n"
              "print('\\n'.join(sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    return set(out.split())


def test_the_worker_path_imports_no_parser() -> None:
    loaded = loaded_after(WORKER_PATH)
    assert "psycopg" in loaded  # the imports did happen
    parser = sorted(m for m in loaded if m.split(".")[0] == "sqlglot"
                    or any(m == p or m.startswith(p + ".") for p in PARSER[1:]))
    assert parser == []


def test_planning_still_has_the_parser() -> None:
    loaded = loaded_after(("dms_pkg.engine.planning",))
    assert {"sqlglot", "dms_pkg.chunking", "dms_pkg.engine.source_query"} <= loaded
