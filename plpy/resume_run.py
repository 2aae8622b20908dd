# Body of dms.resume_run(): re-run what is not done of a run.
from dms_pkg.engine.server import resume

with dms_errors(plpy):
    resume(plpy, p_run_id)
