"""Which failures are worth retrying, and how long to wait (DESIGN §3 "Retry").

Decided by SQLSTATE class, never by message text: a transient failure
(connection lost, server shutting down, serialization failure, deadlock,
lock timeout, too many connections, a statement cancelled by the stale-worker
reaper) may succeed when tried again; a data or SQL error (constraint
violation, invalid input, undefined column, permission denied) will fail the
same way every time, so the chunk fails at once with the database's message.
A server that cannot be reached at all, or is restarting (``is_outage``), is
waited for up to ``OUTAGE_WAIT`` seconds, however many retries that takes.
"""

from __future__ import annotations

import random

# Whole classes, by their two first characters.
_TRANSIENT_CLASSES = frozenset({
    "08",  # connection exception (connection lost, cannot connect)
    "40",  # transaction rollback: serialization failure, deadlock detected
    "53",  # insufficient resources: too many connections, out of memory/disk
    "57",  # operator intervention: admin shutdown, crash shutdown, cannot connect now,
           # query cancelled (by our reaper or a DBA's pg_cancel_backend)
    "58",  # system error (I/O error), outside the database's control
})
_TRANSIENT_CODES = frozenset({
    "55P03",  # lock_not_available (lock_timeout)
    "55006",  # object_in_use
    "HV00N",  # fdw_unable_to_establish_connection
})
# In a transient class but not transient: the statement will fail again.
_PERMANENT_CODES = frozenset({
    "53400",  # configuration_limit_exceeded
    "57P04",  # database_dropped
})


# The server cannot be reached, or is shutting down or starting up: a restart,
# a failover, a broken link -- nothing wrong with the chunk.  Such a failure is
# waited out for OUTAGE_WAIT seconds even past max_retries (``is_outage``,
# engine.worker): a restart lasts longer than the default retries' few seconds
# (0.5 + 1 + 2 s), and while the server is down every chunk a worker takes
# fails the same way, so without this one restart failed every chunk of a run.
_OUTAGE_CODES = frozenset({
    "08000",  # connection_exception
    "08001",  # sqlclient_unable_to_establish_sqlconnection (refused, unreachable)
    "08003",  # connection_does_not_exist
    "08004",  # sqlserver_rejected_establishment_of_sqlconnection
    "08006",  # connection_failure (lost: the server went away)
    "57P01",  # admin_shutdown (MariaDB 1053 "Server shutdown in progress", 1077)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, shutting down)
    "HV00N",  # fdw_unable_to_establish_connection
})
# How long a worker keeps retrying while it cannot reach a server, whatever
# max_retries says (retries still need enable_retry and max_retries > 0).
OUTAGE_WAIT = 60.0


def is_outage(sqlstate: str | None) -> bool:
    """True when the failure says the server is unreachable or restarting (None:
    the connection broke before the server could say anything)."""
    return sqlstate is None or sqlstate in _OUTAGE_CODES


def is_transient(sqlstate: str | None) -> bool:
    """True for SQLSTATEs that a retry may cure; None (no SQLSTATE: the
    connection broke before the server could say anything) counts as lost
    connection."""
    if sqlstate is None:
        return True
    if sqlstate in _PERMANENT_CODES:
        return False
    return sqlstate in _TRANSIENT_CODES or sqlstate[:2] in _TRANSIENT_CLASSES


def backoff(
    attempt: int, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: exponential, with jitter
    over the upper half so workers that failed together do not retry together."""
    ceiling = min(maximum, initial * (2 ** max(0, attempt - 1)))
    draw: float = (rng or random.Random()).uniform(0.5, 1.0)  # noqa: S311 -- jitter
    return float(ceiling * draw)
