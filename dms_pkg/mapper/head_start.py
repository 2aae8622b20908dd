"""Worker sessions a job run opens before the mapper's own code is loaded.

A job run's workers are new backends that each load PL/Python and the
worker's code (~0.3 s of CPU, most of it psycopg) before their first chunk.
``process_job_flow`` used to open them once the job had been read and its
process logged, so they loaded while the run was planned -- but only after
the calling session had itself spent ~0.3 s importing the mapper, the engine
and the planner, with the second core idle.  The PL/Python body of the job
entries calls ``head_start`` first, with nothing imported but this module
and what ``booting`` needs, so the workers load their code while the caller
loads its own; ``process_job_flow`` then takes the sessions
(``Context.booted``) instead of opening its own.  On the benchmark's
583K-row DIM job: 0.15 s less a run (6 interleaved runs each way).

Nothing here may fail a call: a caller without the operator role, settings
that do not parse or do not validate, or an entry that runs no job open
nothing, and the entry then answers as it always did.
"""

from __future__ import annotations

import json
from typing import Any

from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.engine import booting
from dms_pkg.engine import config as cfg
from dms_pkg.errors import DmsError
from dms_pkg.security import OPERATOR, require_role

# The entries that run a job now, in the calling session; ``run_job`` takes
# its run settings in p_params (with the job's DWT_PARAM values, left out here).
JOB_ENTRIES = frozenset({"pkgdwjob.run_job", "pkgdwprc.process_job_flow",
                         "pkgdwprc.process_historical_data"})


def head_start(plpy: Any, entry: str, p_params: Any = None) -> list[str]:
    """The worker sessions opened for this call (none when it runs no job)."""
    if entry not in JOB_ENTRIES:
        return []
    session = PlpyDatabase(plpy)
    try:
        require_role(session, OPERATOR)
        settings = _settings(p_params) if entry == "pkgdwjob.run_job" else {}
    except (DmsError, ValueError):
        return []
    return booting.boot(session, settings)


def _settings(p_params: Any) -> dict[str, Any]:
    """The run settings among run_job's p_params (checked later, by the entry)."""
    value = json.loads(p_params) if isinstance(p_params, str) else p_params
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if k in cfg.SETTINGS}
