# Body of dms.run_queued(): carry out one queued run in this session.
from dms_pkg.engine.server import run_queued

with dms_errors(plpy):
    run_queued(plpy, p_run_id)
