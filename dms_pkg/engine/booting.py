"""Worker sessions opened before a run is planned, so planning and their start overlap.

A worker session is a new backend that loads PL/Python and the worker's
code (about 0.13 s of imports) before it takes its first chunk.  Opened
only once the run is planned, that start is added to every run; opened
when the call begins (``dms.boot_workers``), it happens while the caller's
session plans the run, and the coordinator hands the sessions the run
(``dms.adopt_workers``) when it starts its workers.  Sessions the planned
run does not need are closed at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from dms_pkg.db.base import Session
from dms_pkg.db.plpy_db import PlpyDatabase
from dms_pkg.engine import config as cfg
from dms_pkg.errors import DmsError
from dms_pkg.security import OPERATOR, require_role


def boot(session: Session, params: Mapping[str, Any]) -> list[str]:
    """Open the sessions a run of these settings will have (none for one worker);
    settings that are wrong open nothing, and planning says what is wrong."""
    try:
        config = cfg.effective(session, params, os.environ)
    except DmsError:
        return []
    wanted = int(config["max_workers"]) if config["enable_parallel"] else 1
    if wanted < 2:
        return []
    names = session.query("SELECT dms.boot_workers($1::int) AS names", [wanted])
    session.commit()
    return list(names[0]["names"] or [])


def head_start(plpy: Any, params: Mapping[str, Any]) -> list[str]:
    """``boot`` at the very start of an entry's body, before the entry imports
    its own code, so the workers load theirs meanwhile instead of after it.
    This module imports little for that reason (~40 ms; the engine ~0.25 s).
    It never fails the call: a caller without the operator role opens
    nothing, and the entry then refuses it as it always did.  A 50,000-row
    ``execute_query_parallel`` on 2 workers: 0.67-0.76 s a call against
    0.78-0.82 s (medians of 8, three rounds interleaved)."""
    session = PlpyDatabase(plpy)
    try:
        require_role(session, OPERATOR)
    except DmsError:
        return []
    return boot(session, params)


def settings_of(p_params: Any) -> dict[str, Any]:
    """An entry's p_params as a dict ({} when it is not one: the entry says why)."""
    try:
        return cfg.parse_params(p_params)
    except (DmsError, ValueError):
        return {}


def close_quietly(session: Session, names: list[str]) -> None:
    """Close sessions a call that is failing did not use; its own error is the
    one to report (in an aborted transaction closing fails, and the sessions
    end with the caller's)."""
    if names:
        with contextlib.suppress(Exception):
            close(session, names)


def fit(session: Session, booted: list[str], workers: int, *, queued: bool = False
        ) -> list[str]:
    """The booted sessions a planned run of ``workers`` takes; the rest are closed
    (all of them for a run that waits in the queue or runs in the caller's session)."""
    keep = [] if queued or workers < 2 else booted[:workers]
    close(session, booted[len(keep):])
    return keep


def close(session: Session, names: list[str]) -> None:
    if names:
        session.query("SELECT dms.stop_workers($1::text[], true)", [names])
        session.commit()
