"""Which failures are worth retrying, and how long to wait (DESIGN §3 "Retry").

Decided by SQLSTATE class, never by message text: a transient failure
(connection lost, server shutting down, serialization failure, deadlock,
lock timeout, too many connections, a statement cancelled by the stale-worker
reaper) may succeed when tried again; a data or SQL error (constraint
violation, invalid input, undefined column, permission denied) will fail the
same way every time, so the chunk fails at once with the database's message.
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
