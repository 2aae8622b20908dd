# Body of dms._check_dbcondtls(): BEFORE INSERT OR UPDATE trigger on DMS_DBCONDTLS.
# The refused row is never repeated: not in the message, not in a DETAIL, and
# the function's SET log_min_error_statement keeps the statement out of the log.
from dms_pkg.engine.connections import check_stored_row

with dms_errors(plpy):
    check_stored_row(TD["new"])
return None
