#!/usr/bin/env bash
# The README's main command: the end-to-end demo on the project's own cluster.
# Sets everything up (idempotent), runs `dms demo`, and stops the cluster
# afterwards if it started it (DMS_KEEP_RUNNING=1 keeps it up to explore).
set -euo pipefail
cd "$(dirname "$0")/.."

was_running=0
if [ -x .venv/bin/dms ] && .venv/bin/dms sandbox status >/dev/null 2>&1; then was_running=1; fi
stop_sandbox() {
  if [ "$was_running" = 0 ] && [ "${DMS_KEEP_RUNNING:-0}" != 1 ]; then
    .venv/bin/dms sandbox stop | sed 's/^/teardown: /' || true
  fi
}
trap stop_sandbox EXIT

bash scripts/setup.sh
.venv/bin/dms demo "$@"
