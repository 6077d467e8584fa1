#!/usr/bin/env bash
# Set everything up (with the test tools), then run the whole test suite.  Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/installer/setup.sh" --tests
cd "$ROOT"
export AMBIVIEW_SHARED_DATA="${AMBIVIEW_SHARED_DATA:-$ROOT/../shared/data}"
export MPLBACKEND=Agg
if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest "$@"
fi
exec .venv/bin/python -m pytest "$@"
