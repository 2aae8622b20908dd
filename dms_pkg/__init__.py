"""dms_pkg: parallel, restartable data-warehouse loads driven from PostgreSQL.

The package is imported both by the ``dms`` command line and by the server's
PL/Python interpreter, so it must never import ``plpy`` (DESIGN §2).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
