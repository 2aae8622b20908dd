# Body of dms.execute_query_parallel(): plan, fan out, wait, report.
from dms_pkg.engine.server import execute

with dms_errors(plpy):
    # A procedure returns its INOUT parameters as a record, even a single one.
    return {"p_run_id": execute(plpy, p_source_conid, p_source_sql, p_target_conid,
                                p_target_schema, p_target_table, p_params)}
