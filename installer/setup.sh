#!/usr/bin/env bash
# Set AmbiView up in .venv/ at the project root.  Safe to run twice; the second run only checks and returns.
#   installer/setup.sh           runtime: Qt/X11 libraries and Xvfb (when root and missing), venv, Python packages
#   installer/setup.sh --tests   also the test tools: pytest, pytest-qt and Debian's DICOM checkers
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WITH_TESTS=0
[[ "${1:-}" == "--tests" ]] && WITH_TESTS=1

# --- Debian libraries that Qt (xcb platform), VTK (Mesa) and Xvfb need ------------------------------------------------
DEB_RUNTIME="xvfb xauth libegl1 libgl1 libglx-mesa0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1
 libdbus-1-3 libfontconfig1 libglib2.0-0 libxrender1 libxi6 libxtst6 fonts-dejavu-core"
DEB_TESTS="dicom3tools dcmtk plastimatch"
want="$DEB_RUNTIME"
[[ $WITH_TESTS == 1 ]] && want="$want $DEB_TESTS"
missing=""
for pkg in $want; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [[ -n "$missing" ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: missing Debian packages (install them with your package manager):$missing" >&2
  fi
fi

# --- the virtual environment ------------------------------------------------------------------------------------------
PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
extras=""
[[ $WITH_TESTS == 1 ]] && extras="[test]"
stamp_src="$(cat pyproject.toml installer/setup.sh | sha256sum | cut -c1-16)$extras"
if [[ "$(cat .venv/.ambiview-stamp 2>/dev/null)" != "$stamp_src" ]]; then
  echo "setup: installing Python packages into .venv (torch comes from this machine's disk when it is there)"
  # Where torch has to come from PyPI it is a CUDA build of about 3 GB, 6 GB installed: pip's own cache would hold a
  # second copy, so it is not used, and the free space is printed so that a full disk is plain to see in a log.
  free_space() { df -h --output=avail . | tail -1 | tr -d ' '; }
  echo "setup: free space here: $(free_space)"
  pipi() {
    if ! .venv/bin/python -m pip install -q --no-cache-dir "$@"; then
      echo "setup: pip could not install $* (free space now: $(free_space))" >&2
      exit 1
    fi
  }
  pipi --upgrade pip
  # torch first and pinned, so that no other requirement can pull a different build; its wheels one at a time, so
  # that a download never lies on the disk beside all the others (pip keeps them until the end of one command)
  torch_pins=("torch==2.14.1" "torchvision==0.29.1")
  report="$(mktemp)"
  pipi --dry-run --report "$report" "${torch_pins[@]}"
  for spec in $(.venv/bin/python -c 'import json, sys
print(" ".join(i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]))' \
      "$report"); do
    pipi --no-deps "$spec"
  done
  rm -f "$report"
  pipi "${torch_pins[@]}"  # nothing left to install: this checks that what is there satisfies torch's requirements
  pipi -e ".$extras"
  echo "$stamp_src" > .venv/.ambiview-stamp
fi
