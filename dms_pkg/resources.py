"""Where the SQL API, PL/Python bodies and migrations are found at run time.

In a source checkout (editable install) they sit at the top of the repository
(DESIGN §2).  In a wheel -- which is what the server's PL/Python interpreter
and a production `pip install` see -- the build copies them into
``dms_pkg/_data/``.  Looking in the wheel location first means an installed
package never picks up files from some unrelated working directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_DATA_DIR = PACKAGE_DIR / "_data"


def source_root() -> Path | None:
    """The repository root when running from a source checkout, else None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "migrations").is_dir():
        return root
    return None


def resource_dir(name: str) -> Path:
    """Directory of bundled resource ``name`` (``sql``, ``plpy`` or ``migrations``)."""
    packaged = _DATA_DIR / name
    if packaged.is_dir():
        return packaged
    root = source_root()
    if root is not None and (root / name).is_dir():
        return root / name
    raise FileNotFoundError(
        f"dms_pkg resource folder {name!r} is missing: the package is incomplete; "
        "reinstall dms_pkg"
    )
