"""dms_pkg: parallel, restartable data-warehouse loads driven from PostgreSQL.

The package is imported both by the ``dms`` command line and by the server's
PL/Python interpreter, so it must never import ``plpy`` (DESIGN §2).

The Python API of the user guide is importable from here::

    from dms_pkg import (execute_query_parallel, ParallelProcessor, RetryHandler,
                         RetryConfig, ProgressTracker, create_progress_callback)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.  Imported on first use: every
# PL/Python function imports this package, and most of them never need the
# engine (nor psycopg_pool, which the Python API loads).
_API = {
    "execute_query_parallel": "dms_pkg.engine.api",
    "ParallelResult": "dms_pkg.engine.api_result",
    "ParallelProcessor": "dms_pkg.engine.api_processor",
    "RetryConfig": "dms_pkg.engine.api_retry",
    "RetryHandler": "dms_pkg.engine.api_retry",
    "ProgressSnapshot": "dms_pkg.engine.api_progress",
    "ProgressTracker": "dms_pkg.engine.api_progress",
    "create_progress_callback": "dms_pkg.engine.api_progress",
}

__all__ = [
    "ParallelProcessor",
    "ParallelResult",
    "ProgressSnapshot",
    "ProgressTracker",
    "RetryConfig",
    "RetryHandler",
    "__version__",
    "create_progress_callback",
    "execute_query_parallel",
]

if TYPE_CHECKING:
    from dms_pkg.engine.api import execute_query_parallel
    from dms_pkg.engine.api_processor import ParallelProcessor
    from dms_pkg.engine.api_progress import (
        ProgressSnapshot,
        ProgressTracker,
        create_progress_callback,
    )
    from dms_pkg.engine.api_result import ParallelResult
    from dms_pkg.engine.api_retry import RetryConfig, RetryHandler


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'dms_pkg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
