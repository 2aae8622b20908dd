"""The PL/Python entry points of dbms_parallel_execute, by name.

Each body in plpy/parallel_execute.py hands over its entry name and its
arguments (Oracle's parameter names); this module calls the core with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dms_pkg.jobs.parallel_execute import chunking, runner

SETTINGS = ("sql_stmt", "language_flag", "edition", "apply_crossedition_trigger",
            "fire_apply_trigger", "parallel_level", "job_class")


def _run(plpy: Any, a: dict[str, Any]) -> None:
    runner.run(plpy, a["task_name"], {k: a.get(k) for k in SETTINGS}, resume=False)


def _resume(plpy: Any, a: dict[str, Any]) -> None:
    runner.run(plpy, a["task_name"], {k: a.get(k) for k in SETTINGS}, resume=True,
               force=bool(a.get("force")))


ENTRIES: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "create_chunks_by_number_col": lambda plpy, a: chunking.by_number_col(
        plpy, a["task_name"], a["table_owner"], a["table_name"], a["table_column"],
        a["chunk_size"]),
    "create_chunks_by_rowid": lambda plpy, a: chunking.by_rowid(
        plpy, a["task_name"], a["table_owner"], a["table_name"], a["by_row"], a["chunk_size"]),
    "create_chunks_by_sql": lambda plpy, a: chunking.by_sql(
        plpy, a["task_name"], a["sql_stmt"], a["by_rowid"]),
    "run_task": _run,
    "resume_task": _resume,
    "stop_task": lambda plpy, a: runner.stop(plpy, None, a["task_name"], False),
    "adm_stop_task": lambda plpy, a: runner.stop(plpy, a["task_owner"], a["task_name"], True),
    "work": lambda plpy, a: runner.work(plpy, a["p_task_id"], a["p_worker"]),
}


def call(plpy: Any, entry: str, arguments: dict[str, Any]) -> Any:
    return ENTRIES[entry](plpy, arguments)
