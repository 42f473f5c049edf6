#!/usr/bin/env bash
# The C-only build (Makefile) with AddressSanitizer + UndefinedBehaviorSanitizer: run the C
# kernel sweep, the C API test (given an .mnq model; also under ThreadSanitizer) and tools/leakcheck.c, whose thousands
# of create/run/destroy cycles fail under LeakSanitizer on any leak.
#   tools/sanitize_c.sh BUILD_DIR [MODEL.mnq] [cycles]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="$(mkdir -p "$1" && cd "$1" && pwd)"
MODEL="${2:-}"
CYCLES="${3:-3000}"
SAN="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
# CFLAGS/LDFLAGS from the environment: the Makefile appends its own flags to them
(cd "$REPO" && CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" make -s -j2 STATIC=0 BUILD="$BUILD" all)
${CC:-gcc} $SAN -std=gnu11 -pthread -I"$REPO/src/kernels" "$REPO/tools/leakcheck.c" "$BUILD/libmnq.a" -lm \
  -o "$BUILD/leakcheck"
export LD_PRELOAD= ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
"$BUILD/test_kernels"
"$BUILD/test_limits" 50
if [ -n "$MODEL" ]; then "$BUILD/test_api" "$MODEL"; fi
"$BUILD/leakcheck" "$CYCLES"
# ThreadSanitizer on the C API test: the worker pool's claim/complete protocol under
# several concurrent callers and changing thread counts
if [ -n "$MODEL" ]; then
  (cd "$REPO" && CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" make -s -j2 STATIC=0 \
    BUILD="$BUILD/tsan" "$BUILD/tsan/test_api")
  TSAN_OPTIONS="halt_on_error=1" "$BUILD/tsan/test_api" "$MODEL"
fi
