"""The engine's own database, as the planner, coordinator and workers reach it.

Kept apart from the planner so that a worker session imports only what
moving chunks needs (no SQL parser).
"""

from __future__ import annotations

from dataclasses import dataclass

from dms_pkg.backends.endpoint import Endpoint
from dms_pkg.db.base import Session
from dms_pkg.db.sources import SourceConnection


@dataclass
class Local:
    """The engine's own database, as the planner and workers reach it."""

    session: Session  # runs SQL here: plpy inside a backend, psycopg outside
    planner_source: SourceConnection  # the same database, for the chunk planner
    conninfo: Endpoint  # a psycopg route here, for COPY endpoints
    search_path: str | None = None  # the caller's, for the workers
