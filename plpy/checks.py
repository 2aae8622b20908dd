# Body of dms.schema_diff, dms.compare_tables and dms.profile_tables: DMS_ENTRY (set by
# the build) names the check; p_pairs / p_tables and p_params are its arguments.
from dms_pkg.jobs import checks_server

with dms_errors(plpy):
    names = globals()
    return getattr(checks_server, DMS_ENTRY)(plpy, names.get("p_pairs") or names.get("p_tables"),
                                             names.get("p_params"))
