# Body of dms.plan_chunks(): the chunk plan of a source query, without running it.
from dms_pkg.chunking.preview import plan_rows, preview
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.db.sources import PlpySource
from dms_pkg.security import OPERATOR, require_role

with dms_errors(plpy):
    require_role(PlpyDatabase(plpy), OPERATOR)
    # Only a postgres query can be measured here: it reads this database.
    local = PlpySource(plpy) if p_dialect in ("postgres", "postgresql") else None
    plan = preview(local, p_sql, dialect=p_dialect, key=p_key, n_chunks=p_chunks,
                   chunk_size=p_chunk_size, strategy=p_strategy)
    return [row.__dict__ for row in plan_rows(plan)]
