"""dms_pkg: parallel, restartable data-warehouse loads driven from PostgreSQL.

The package is imported both by the ``dms`` command line and by the server's
PL/Python interpreter, so it must never import ``plpy`` (DESIGN §2).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "execute_query_parallel"]


def __getattr__(name: str) -> Any:
    # Imported on first use: every PL/Python function imports this package,
    # and most of them never need the engine.
    if name == "execute_query_parallel":
        from dms_pkg.engine.api import execute_query_parallel

        return execute_query_parallel
    raise AttributeError(f"module 'dms_pkg' has no attribute {name!r}")
