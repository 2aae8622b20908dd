"""The server-side copy of dms_pkg that PL/Python imports (STYLE.md §1).

plpython3u runs the interpreter the server links (Debian's python3.11), which
cannot see a virtualenv.  So dms_pkg and its pinned dependencies are installed
with ``pip install --target <root>/<version>``; the generated preamble of
every function puts that folder first on ``sys.path``.  One folder per
version means an upgrade never changes code under a running session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dms_pkg import __version__
from dms_pkg.errors import OBJECT_NOT_IN_PREREQUISITE_STATE, DmsError
from dms_pkg.resources import source_root

STAMP = ".dms_pkg_source"
_FINGERPRINT_DIRS = ("dms_pkg", "sql", "plpy", "migrations")


def fingerprint(root: Path) -> str:
    """Hash of everything that ends up in the server-side library.

    Lets a development checkout reinstall only when the code really changed,
    so a second ``dms sandbox start`` does nothing.
    """
    digest = hashlib.sha256()
    files = [root / "pyproject.toml"]
    for folder in _FINGERPRINT_DIRS:
        files.extend(
            p
            for p in sorted((root / folder).rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        )
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def target_dir(root: Path, version: str = __version__) -> Path:
    return root / version


def ensure(root: Path, *, source: Path | None = None, wheel: Path | None = None) -> str:
    """Install this version of dms_pkg under ``root/<version>`` if needed.

    ``source`` is a checkout to build from (default: this package's own
    checkout, if it runs from one); ``wheel`` a built wheel.  Without either,
    the pinned version is fetched from the package index.  Returns a one-line
    description of what was done.
    """
    source = source or (None if wheel else source_root())
    dest = target_dir(root)
    stamp = dest / STAMP
    wanted = fingerprint(source) if source else f"release {__version__}"
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return f"server-side dms_pkg {__version__} in {dest} is up to date"

    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 -- the server (another OS user) must read it
    staging = root / f".{__version__}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    what = str(wheel or source or f"dms_pkg=={__version__}")
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
        "--disable-pip-version-check", "--no-compile", "--target", str(staging), what,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise DmsError(
            f"could not install dms_pkg {__version__} for the server's Python into {dest}",
            sqlstate=OBJECT_NOT_IN_PREREQUISITE_STATE,
            detail=(done.stderr or done.stdout).strip()[-2000:],
            hint="check network access to the package index and free disk space",
        )
    # Byte-compile now, as this user: the server's OS user cannot write
    # __pycache__ here, and compiling sqlglot and psycopg from source in every
    # new backend (each worker session) costs a third of a second.  -d makes
    # tracebacks name the final folder, not the staging one.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "-d", str(dest), str(staging)],
        capture_output=True, check=False,
    )
    (staging / STAMP).write_text(wanted + "\n")
    # Swap in the complete folder; a reader never sees a half-installed one.
    old = root / f".{__version__}.old-{os.getpid()}"
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    _make_readable(dest)
    return f"installed server-side dms_pkg {__version__} into {dest}"


def _make_readable(path: Path) -> None:
    """The server runs as another OS user (postgres): it must read every file."""
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)  # noqa: S103 -- read-only code, readable by the server
        for name in filenames:
            full = os.path.join(dirpath, name)
            os.chmod(full, os.stat(full).st_mode | 0o444)
