"""The scheduler's PL/Python entry points: each SQL function names one, and the
dispatcher's (which hand out and record every login's runs) are for dms_admin."""

from __future__ import annotations

import re

from dms_pkg.install import bundle
from dms_pkg.resources import resource_dir
from dms_pkg.scheduler.entry import ENTRIES
from dms_pkg.security import ADMIN, OPERATOR

SQL = (resource_dir("sql") / "api" / "090_dbms_scheduler.sql").read_text()


def test_every_scheduler_entry_has_a_sql_function_and_back() -> None:
    named = {entry for name, entry in bundle._MARKER.findall(SQL) if name == "scheduler"}
    assert named == set(ENTRIES)


def test_the_dispatchers_entries_are_for_administrators_only() -> None:
    dispatcher = {"dms._sched_queue_due", "dms._sched_claim", "dms._sched_abandon"}
    assert {e for e, (role, _) in ENTRIES.items() if role == ADMIN} == dispatcher
    assert ENTRIES["dms._sched_start"][0] == OPERATOR


def test_no_operator_is_granted_the_dispatcher() -> None:
    grants = re.findall(r"GRANT EXECUTE ON (?:FUNCTION|PROCEDURE)(.*?)\bTO (\w+);", SQL, re.S)
    to_operators = " ".join(objects for objects, role in grants if role == "dms_operator")
    for name in ("dispatch(", "_sched_queue_due(", "_sched_claim(", "_sched_abandon(",
                 "_sched_start(", "_sched_not_started("):
        assert name not in to_operators
    to_admins = " ".join(objects for objects, role in grants if role == "dms_admin")
    for name in ("dbms_scheduler.dispatch(integer)", "dms._sched_queue_due()",
                 "dms._sched_claim()", "dms._sched_abandon(bigint)"):
        assert name in to_admins
