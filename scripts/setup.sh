#!/usr/bin/env bash
# One idempotent setup path for a fresh Debian 12 machine (run as root, or
# as a user with sudo for the apt step):
#   1. Debian packages: PostgreSQL 15 + PL/Python + pg_cron (+ dblink, which
#      ships in postgresql-15), python3.11 venv support;
#   2. the Python environment .venv with the project installed (editable);
#   3. the project's own servers: `dms sandbox start` (PostgreSQL: initdb,
#      config, server-side dms_pkg for PL/Python, start; MariaDB, a source
#      dialect the tests split for real).
# Run twice, it does nothing the second time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PG_MAJOR=15
# chromium: the headless browser the HTML report tests render pages in.
PKGS="postgresql-$PG_MAJOR postgresql-plpython3-$PG_MAJOR postgresql-$PG_MAJOR-cron mariadb-server mariadb-client python3.11 python3.11-venv python3-pip chromium"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages:$missing"
  # Keep Debian's own default cluster (15/main) from being started by the package.
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "setup: Debian packages present"
fi

# The venv uses Debian's python3.11: the same interpreter the server's
# plpython3u links, so compiled wheels fit both.
PY=/usr/bin/python3.11
stamp_want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.dms_stamp 2>/dev/null)" != "$stamp_want" ]; then
  echo "setup: creating .venv and installing dms_pkg with its pinned dependencies"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  # (pip.conf on some machines names local mirrors that may be absent: hide that noise)
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev,report]" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$stamp_want" > .venv/.dms_stamp
else
  echo "setup: .venv up to date"
fi

.venv/bin/dms sandbox start | sed 's/^/setup: /'
