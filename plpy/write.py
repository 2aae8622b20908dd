# Body of dms._write(): the one door through which the mapper packages write
# DMS tables.  dms_pkg.mapper.writes checks the caller's role for the operation.
import json

from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.mapper.writes import perform

with dms_errors(plpy):
    args = json.loads(p_args) if p_args else {}
    return json.dumps(perform(PlpyDatabase(plpy), p_op, args), default=str)
