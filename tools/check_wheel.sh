#!/usr/bin/env bash
# Install a built wheel into a fresh venv with no compiler on PATH (only the venv's own
# bin/), then classify with it at every level this CPU offers (tools/wheel_smoke.py).
#   tools/check_wheel.sh dist/mnq-*-manylinux*.whl [SHARED_DIR]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WHEEL="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SHARED="$(cd "${2:-${MNQ_SHARED:-$REPO/../shared}}" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/venv"
cd "$WORK"  # away from the source tree: mnq must come from the installed wheel
if PATH="$WORK/venv/bin" command -v gcc cc clang >/dev/null; then
  echo "check_wheel.sh: a compiler is still on PATH" >&2
  exit 1
fi
env -u PYTHONPATH PATH="$WORK/venv/bin" pip install -q "$WHEEL"
env -u PYTHONPATH PATH="$WORK/venv/bin" python "$REPO/tools/wheel_smoke.py" "$SHARED"
