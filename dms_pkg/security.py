"""Role checks for SECURITY DEFINER entry points (DESIGN §6).

PostgreSQL's EXECUTE privilege is the first gate; this check is the second,
so that a grant made by mistake (say, to PUBLIC) still does not let a viewer
run an operator action.  ``session_user`` is checked because inside a
SECURITY DEFINER function ``current_user`` is the function's owner.
"""

from __future__ import annotations

from dms_pkg.db.base import Database
from dms_pkg.errors import INSUFFICIENT_PRIVILEGE, DmsError

VIEWER = "dms_viewer"
OPERATOR = "dms_operator"
ADMIN = "dms_admin"
ROLES = (VIEWER, OPERATOR, ADMIN)


def require_role(db: Database, role: str) -> None:
    """Raise unless the session's login is a member of ``role`` (or superuser)."""
    if role not in ROLES:
        raise ValueError(f"unknown dms role {role!r}")
    rows = db.query(
        "SELECT session_user::text AS who,"
        " pg_catalog.pg_has_role(session_user, $1::text, 'MEMBER') AS ok",
        [role],
    )
    if not rows or not rows[0]["ok"]:
        who = rows[0]["who"] if rows else "?"
        raise DmsError(
            f"permission denied: role {who} is not a member of {role}",
            sqlstate=INSUFFICIENT_PRIVILEGE,
            hint=f"ask an administrator to GRANT {role} TO {who}",
        )
