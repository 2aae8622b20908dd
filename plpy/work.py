# Body of dms.work(): one worker's loop over the run's chunks.
from dms_pkg.engine.server import run_work

with dms_errors(plpy):
    run_work(plpy, p_run_id)
