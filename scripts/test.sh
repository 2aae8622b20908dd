#!/usr/bin/env bash
# The README's test command: set everything up (idempotent), check style and
# types, then run every test -- unit and integration -- against the real
# cluster.  Arguments go to pytest.  The cluster is stopped afterwards if this
# script started it (DMS_KEEP_RUNNING=1 keeps it up).
set -euo pipefail
cd "$(dirname "$0")/.."

was_running=0
if [ -x .venv/bin/dms ] && .venv/bin/dms sandbox status >/dev/null 2>&1; then was_running=1; fi
stop_sandbox() {
  if [ "$was_running" = 0 ] && [ "${DMS_KEEP_RUNNING:-0}" != 1 ] && [ -z "${DMS_TEST_DSN:-}" ]; then
    .venv/bin/dms sandbox stop | sed 's/^/teardown: /' || true
  fi
}
trap stop_sandbox EXIT

bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
# pytest exits 5 when it collected no test: that is a failure here too.
.venv/bin/pytest "$@"
