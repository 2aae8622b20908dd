"""Numbered migrations: discovery, checksums, and what a database still needs.

A migration is ``migrations/NNNN_name.sql``.  It is applied once, recorded
with its SHA-256 in ``dms.schema_migration``, and frozen from then on: a
released file that changes, a database that has migrations this package does
not know (a newer dms_pkg installed it), or an older migration that appears
below an applied one are all refused, because each would leave the schema in
a state no release was tested with.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dms_pkg import __version__
from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class Applied:
    """A row of ``dms.schema_migration``."""

    version: int
    name: str
    checksum: str
    package_version: str


def discover(directory: Path) -> list[Migration]:
    """Read every migration in ``directory``, ordered by number.

    Files that look like migrations but are misnamed are an error rather than
    silently skipped: a skipped migration is a schema that differs between
    installs.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise DmsError(
                f"migration file {path.name} is not named NNNN_name.sql",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint="use a four-digit number, an underscore and a lower-case name",
            )
        number = int(match.group(1))
        if number in found:
            raise DmsError(
                f"two migrations share number {number:04d}: "
                f"{found[number].name} and {path.name}",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint="give the newer one the next free number",
            )
        found[number] = Migration(number, path.name, path.read_text(encoding="utf-8"))
    return [found[n] for n in sorted(found)]


def pending(known: list[Migration], applied: list[Applied]) -> list[Migration]:
    """The migrations to apply now, after checking the database is compatible."""
    by_version = {m.version: m for m in known}
    newest_known = max(by_version, default=0)
    for row in applied:
        mig = by_version.get(row.version)
        if mig is None and row.version > newest_known:
            raise DmsError(
                f"this database's dms schema is newer than dms_pkg {__version__}: "
                f"it has migration {row.name} (applied by dms_pkg {row.package_version}), "
                f"and this package knows migrations only up to {newest_known:04d}",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                detail="installing an older package over a newer schema could undo or "
                "break what the newer version built; nothing was changed",
                hint=f"install dms_pkg {row.package_version} or newer",
            )
        if mig is None:
            raise DmsError(
                f"migration {row.name} is recorded as applied but this package has no such file",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint="released migrations must never be deleted; restore the file",
            )
        if mig.checksum != row.checksum:
            raise DmsError(
                f"migration {mig.name} was changed after it was applied",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                detail=f"recorded checksum {row.checksum[:12]}…, file checksum "
                f"{mig.checksum[:12]}…",
                hint="released migrations are frozen: restore the file and put the "
                "change in a new numbered migration",
            )
    done = {row.version for row in applied}
    newest_applied = max(done, default=0)
    todo = [m for m in known if m.version not in done]
    for mig in todo:
        if mig.version < newest_applied:
            raise DmsError(
                f"migration {mig.name} is numbered below the newest applied one "
                f"({newest_applied:04d}) but was never applied",
                sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
                hint="renumber it above every released migration",
            )
    return todo
