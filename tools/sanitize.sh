#!/usr/bin/env bash
# Build the C kernels + extension with AddressSanitizer + UndefinedBehaviorSanitizer
# (setup.py: MNQ_SANITIZE=1) in a separate directory, then run the test suite against
# that build, and the C-only build's tests and leak check under the same sanitizers
# (tools/sanitize_c.sh).
#   tools/sanitize.sh [pytest args...]        default: the whole suite (-q)
# Env: PYTHON (default python3), MNQ_SAN_DIR (build dir, default /tmp/mnq-asan-$UID).
# Any UBSan report stops the process (halt_on_error=1) and fails the run; so does any ASan error.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
DIR="${MNQ_SAN_DIR:-/tmp/mnq-asan-$(id -u)}"
CC="${CC:-gcc}"

# the build requirements of pyproject.toml: this script runs setup.py directly
"$PY" -m pip install -q "setuptools>=77" wheel "Cython>=3.0" "numpy>=2.0"
rm -rf "$DIR" && mkdir -p "$DIR"
cp -r "$REPO/src" "$REPO/setup.py" "$DIR/"
rm -f "$DIR"/src/mnq/_core*.so "$DIR"/src/mnq/_core.c
(cd "$DIR" && MNQ_SANITIZE=1 CC="$CC" "$PY" setup.py -q build_ext --build-temp build/tmp --build-lib build/lib >build.log 2>&1) \
  || { tail -30 "$DIR/build.log"; exit 1; }
cp "$DIR"/build/lib/mnq/_core*.so "$DIR/src/mnq/"

LIBASAN="$($CC -print-file-name=libasan.so)"
[ -f "$LIBASAN" ] || { echo "sanitize.sh: libasan.so not found for $CC" >&2; exit 1; }
export LD_PRELOAD="$LIBASAN"  # the Python interpreter itself is not instrumented: ASan must load first
# detect_leaks=0: CPython and TensorFlow keep memory until exit by design (the C library's own
# leak check is leakcheck.c below). allocator_may_return_null=1: a huge numpy allocation gets
# NULL -> MemoryError, as without ASan, instead of an ASan abort.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:detect_odr_violation=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export PYTHONPATH="$DIR/src${PYTHONPATH:+:$PYTHONPATH}"
export MNQ_SHARED="${MNQ_SHARED:-$(dirname "$REPO")/shared}"
export MNQ_SANITIZED=1  # tests that cannot work under ASan (address-space limits) skip themselves

where="$(cd "$REPO" && "$PY" -c 'import mnq._core as c; print(c.__file__)')"
case "$where" in "$DIR"/*) ;; *) echo "sanitize.sh: imported $where, not the sanitized build" >&2; exit 1;; esac
echo "sanitize.sh: sanitized build $where; ISAs: $(cd "$REPO" && "$PY" -c 'import mnq._core as c; print(*c.supported_isas())')"

# 1. the C-only build: C kernel and API tests, and create/run/destroy cycles under LeakSanitizer
(cd "$REPO" && "$PY" -m mnq extract "$MNQ_SHARED/models/mobilenet_v1_1.0_160_quant_from224.tflite" -o "$DIR/main.mnq" >/dev/null)
"$REPO/tools/sanitize_c.sh" "$DIR/c" "$DIR/main.mnq"

# 2. the test suite on the sanitized extension (every ISA test runs: they parametrize over
# supported_isas()). Left out: test_tfhub_module.py -- TensorFlow aborts when ASan is preloaded,
# and those tests exercise the pure-Python module reader, whose output the .tflite/.mnq
# tests already run through every kernel here. test_fresh_clone.py and test_build.py build and
# install the package (pip, gcc): tools under a preloaded ASan, with nothing of mnq's to check.
cd "$REPO"
if [ $# -eq 0 ]; then
  set -- -q --ignore=tests/test_tfhub_module.py --ignore=tests/test_fresh_clone.py --ignore=tests/test_build.py
fi
"$PY" -m pytest -p no:cacheprovider "$@"
