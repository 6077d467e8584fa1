#!/usr/bin/env bash
# Set everything up, then start AmbiView on its built-in demo study.  Extra arguments go to `ambiview`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/installer/setup.sh"
cd "$ROOT"
if [[ -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
  echo "run-demo: no display found; running on a virtual screen (xvfb-run). Use --screenshot OUT.png to see it." >&2
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/ambiview --demo "$@"
fi
exec .venv/bin/ambiview --demo "$@"
