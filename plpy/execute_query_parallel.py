# Body of dms.execute_query_parallel(): plan, fan out, wait, report.
# The workers' sessions are opened first, so they load their code while this
# session loads its own (dms_pkg.engine.booting.head_start).
from dms_pkg.engine.booting import head_start, settings_of

with dms_errors(plpy):
    booted = head_start(plpy, settings_of(p_params))
    from dms_pkg.engine.server import execute

    # A procedure returns its INOUT parameters as a record, even a single one.
    return {"p_run_id": execute(plpy, p_source_conid, p_source_sql, p_target_conid,
                                p_target_schema, p_target_table, p_params, booted)}
