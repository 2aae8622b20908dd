# Body of dms.check_install(): role check first, then the core's diagnosis.
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.diagnostics import check_install
from dms_pkg.security import OPERATOR, require_role

db = PlpyDatabase(plpy)
with dms_errors(plpy):
    require_role(db, OPERATOR)
    return [(c.name, c.ok, c.detail) for c in check_install(db, dms_pkg_path=dms_pkg.__file__)]
