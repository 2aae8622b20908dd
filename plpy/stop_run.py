# Body of dms.stop_run(): stop handing out chunks, cancel what runs, wait.
from dms_pkg.engine.server import stop

with dms_errors(plpy):
    stop(plpy, p_run_id)
