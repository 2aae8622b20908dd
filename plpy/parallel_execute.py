# Body of the dbms_parallel_execute procedures written in Python (chunking,
# run_task, resume_task, stop_task) and of dms.pe_work: DMS_ENTRY (set by the
# build) names the entry point; the arguments are the globals of their names.
from dms_pkg.jobs.parallel_execute.entry import call

with dms_errors(plpy):
    call(plpy, DMS_ENTRY, {k: v for k, v in globals().items() if not k.startswith("_")})
