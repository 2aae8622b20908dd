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
583K-row DIM reload, from the CALL to its run's record: 0.30-0.46 s against
0.51-0.69 s (10 runs each, interleaved in fives); the whole call 2.10 s
against 2.28 s (medians).

Nothing here may fail a call: a caller without the operator role, settings
that do not parse or do not validate, or an entry that runs no job open
nothing, and the entry then answers as it always did.
"""

from __future__ import annotations

from typing import Any

from dms_pkg.engine import booting
from dms_pkg.engine import config as cfg

# The entries that run a job now, in the calling session; ``run_job`` takes
# its run settings in p_params (with the job's DWT_PARAM values, left out here).
JOB_ENTRIES = frozenset({"pkgdwjob.run_job", "pkgdwprc.process_job_flow",
                         "pkgdwprc.process_historical_data"})


def head_start(plpy: Any, entry: str, p_params: Any = None) -> list[str] | None:
    """The worker sessions opened for this call; None when it runs no job (a
    job it runs later, as ``dispatch`` does, then opens its own)."""
    if entry not in JOB_ENTRIES:
        return None
    settings = {}
    if entry == "pkgdwjob.run_job":
        settings = {k: v for k, v in booting.settings_of(p_params).items() if k in cfg.SETTINGS}
    return booting.head_start(plpy, settings)
