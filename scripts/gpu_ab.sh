#!/bin/bash
# A kernel change measured against the code before it in one device call, under one binary:
# the old libpagoda.so (packed here from the build before the change) and the new one (the
# bundle's) take turns under the same `pagoda` tool, so the two figures share a machine, a
# clock and an hour (docs/PERFORMANCE.md: only ratios of one lease count).
#
# Here, before the change (the build of the old code):
#   scripts/gpu_ab.sh --pack-old BUILD_DIR .carry/old/libpagoda.so.0.xz
# There, with the new build unpacked (scripts/gpu_check.sh's bundle; B names its folder):
#   B=/work/main/_build/g90 OLD=.carry/old/libpagoda.so.0.xz scripts/gpu_ab.sh CONFIG [ARGS...]
# A switch of one library instead (an opt-in path against the default): OLD_ENV and NEW_ENV,
# e.g. OLD_ENV=PGD_CUDA_FP8_NORM_X=0 NEW_ENV=PGD_CUDA_FP8_NORM_X=1, without OLD: both turns
# run the new library, each under its variables (with OLD, each library under its own).
#
# For each of ROUNDS (default 2) rounds, old then new: `pagoda bench latency --random-weights
# CONFIG ARGS` (default ARGS: --batch 1,8,16 --prompt-len 128 --steps 64), its decode and
# first-token lines side by side. With NCU_KERNELS (a regex of kernel names) and ncu on the
# machine, also one eager step (PAGODA_CUDA_GRAPHS=0, a 16-token prompt and one decode step)
# under Nsight Compute for each, and every kernel's mean time a launch, old against new, by
# name and grid. BENCH_QUANT="w4g128 fp8 ..." adds `pagoda bench quant --format F` for each;
# BENCH_ATTENTION="ARGS" adds `pagoda bench attention ARGS` (e.g. "--mixed 32x2048+2,..."), its
# case lines printed after each turn's latency lines.
# Logs and CSVs go to $OUT (default /tmp/ab); the summary is $OUT/ab.txt. Exit status 0 when
# every run finished.
set -u
if [ "${1:-}" = --pack-old ]; then
  build=${2:?usage: gpu_ab.sh --pack-old BUILD_DIR OUT.xz}
  out=${3:?usage: gpu_ab.sh --pack-old BUILD_DIR OUT.xz}
  lib=$(readlink -f "$build/.libs/libpagoda.so.0") || exit 1
  mkdir -p "$(dirname "$out")"
  tmp=$(mktemp) && strip -o "$tmp" "$lib" && xz -T2 -6 -c "$tmp" > "$out" && rm -f "$tmp" || exit 1
  echo "gpu_ab.sh: $out ($(stat -c %s "$out") bytes) from $lib"
  exit 0
fi
CONFIG=${1:?usage: gpu_ab.sh CONFIG [bench latency args]}
shift
[ $# -gt 0 ] || set -- --batch 1,8,16 --prompt-len 128 --steps 64
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
B=${B:?B=the unpacked build folder (scripts/gpu_check.sh)}
OLD_ENV=${OLD_ENV:-}
NEW_ENV=${NEW_ENV:-}
[ -n "${OLD:-}" ] || [ -n "$OLD_ENV$NEW_ENV" ] ||
  { echo "gpu_ab.sh: OLD=the old libpagoda.so.0.xz (gpu_ab.sh --pack-old), or OLD_ENV / NEW_ENV"; exit 2; }
OUT=${OUT:-/tmp/ab}
mkdir -p "$OUT" || exit 1
if [ -n "${OLD:-}" ]; then
  mkdir -p "$OUT/oldlib"
  xz -dc "$OLD" > "$OUT/oldlib/libpagoda.so.0" || exit 1
fi
NEW_PATH=${LD_LIBRARY_PATH:-}
P=$B/tools/pagoda

# run VERSION CMD...: CMD with VERSION's library first on the path (the old one only with
# OLD) and VERSION's variables (OLD_ENV / NEW_ENV) set.
run() {
  local v=$1; shift
  # shellcheck disable=SC2086  # the variables' words are NAME=VALUE pairs for env
  if [ "$v" = old ]; then
    LD_LIBRARY_PATH=${OLD:+$OUT/oldlib}${OLD:+${NEW_PATH:+:}}$NEW_PATH env $OLD_ENV "$@"
  else
    LD_LIBRARY_PATH=$NEW_PATH env $NEW_ENV "$@"
  fi
}

# The runs (bench latency ARGS...), their lines on stdout; returns 1 when one failed.
runs() {
  local status=0 r v log f
  for r in $(seq "${ROUNDS:-2}"); do
    for v in old new; do
      log=$OUT/lat_${v}_$r.txt
      run "$v" timeout 300 "$P" bench latency --random-weights "$CONFIG" "$@" > "$log" 2>&1 ||
        status=1
      echo "== $v${OLD_ENV:+ }$( [ "$v" = old ] && echo "$OLD_ENV" || echo "$NEW_ENV"), round $r: bench latency $*"
      grep -A12 "^decode" "$log" | grep -E "^ +[0-9]" || tail -n 3 "$log"
      for f in ${BENCH_QUANT:-}; do
        run "$v" timeout 120 "$P" bench quant --format "$f" >> "$OUT/quant_${v}_$r.txt" 2>&1 ||
          status=1
      done
      if [ -n "${BENCH_ATTENTION:-}" ]; then
        f=$OUT/attn_${v}_$r.txt
        # shellcheck disable=SC2086  # BENCH_ATTENTION is words
        run "$v" timeout 120 "$P" bench attention $BENCH_ATTENTION > "$f" 2>&1 || status=1
        # The cases' lines (they start with their case name: "decode", "prefill" or a digit);
        # else the tail, which says why there are none.
        grep -E "^(decode|prefill|[0-9])" "$f" || { tail -n 2 "$f"; status=1; }
      fi
    done
  done
  if [ -n "${NCU_KERNELS:-}" ] && command -v ncu >/dev/null; then
    for v in old new; do
      run "$v" env PAGODA_CUDA_GRAPHS=0 timeout 200 ncu --clock-control none \
        -k "regex:$NCU_KERNELS" --csv --page raw --metrics gpu__time_duration.sum \
        "$P" bench latency --random-weights "$CONFIG" --batch 1 --steps 1 --warmup 0 \
        --prompt-len 16 \
        > "$OUT/ncu_$v.csv" 2> "$OUT/ncu_$v.err" || status=1
    done
    echo "== ncu: mean time a launch, one eager step (16-token prompt + one decode step)"
    python3 "$HERE/ncu_ab.py" "$OUT/ncu_old.csv" "$OUT/ncu_new.csv" || status=1
  fi
  echo "gpu_ab.sh: status $status"
  return $status
}

# Through a pipe rather than a process substitution: the pipeline ends when tee has written
# all of ab.txt, which a caller reads as soon as this script exits.
runs "$@" 2>&1 | tee "$OUT/ab.txt"
exit "${PIPESTATUS[0]}"
