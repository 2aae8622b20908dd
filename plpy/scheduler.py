# Body of every PL/Python function and procedure of dbms_scheduler and of the
# dms._sched_* helpers: DMS_ENTRY (set by the build) names the entry point,
# the function's arguments are globals.  dms_pkg.scheduler.entry checks the
# caller's role and runs it.
from dms_pkg.scheduler.entry import call

with dms_errors(plpy):
    return call(plpy, DMS_ENTRY, dict(globals()))
