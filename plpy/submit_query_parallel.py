# Body of dms.submit_query_parallel(): plan and queue for the dispatcher.
from dms_pkg.engine.server import submit

with dms_errors(plpy):
    return submit(plpy, p_source_conid, p_source_sql, p_target_conid, p_target_schema,
                  p_target_table, p_params)
