#!/usr/bin/env bash
# Build tools/leakcheck.c against the C library (every kernel file, per-ISA flags as in
# setup.py) with ASan + UBSan and run it: LeakSanitizer fails the run on any leak.
#   tools/leakcheck.sh [output binary] [cycles]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/mnq-leakcheck-$(id -u)}"
CYCLES="${2:-3000}"
CC="${CC:-gcc}"
K="$REPO/src/kernels"
FLAGS=(-O1 -g -std=gnu11 -fopenmp -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -I"$K")
SRCS=("$REPO/tools/leakcheck.c" "$K/net.c" "$K/dispatch.c" "$K"/ref/*.c "$K"/generic/*.c)
OBJS=()
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
case "$(uname -m)" in
  x86_64|amd64|i?86)
    FLAGS+=(-DMNQ_X86_KERNELS=1)
    declare -A ISA=([avx2]="-mavx2 -mfma -mf16c"
      [avx512vnni]="-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mfma"
      [amx]="-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni -mamx-tile -mamx-int8")
    for isa in avx2 avx512vnni amx; do
      for f in "$K"/x86/*__"$isa".c; do
        [ -e "$f" ] || continue
        o="$tmp/$(basename "$f" .c).o"
        # shellcheck disable=SC2086
        $CC "${FLAGS[@]}" ${ISA[$isa]} -c "$f" -o "$o"
        OBJS+=("$o")
      done
    done;;
esac
$CC "${FLAGS[@]}" "${SRCS[@]}" "${OBJS[@]}" -o "$OUT" -lm
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  LD_PRELOAD= "$OUT" "$CYCLES"
