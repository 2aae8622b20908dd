# Body of dms.dispatch(): carry out queued runs.
from dms_pkg.engine.server import dispatch

with dms_errors(plpy):
    dispatch(plpy, p_max_runs)
