#!/bin/bash
# Switches of one build (environment variables that pick a kernel or a path), each tested and
# timed in one device call, so that a lease's few minutes give tests, figures and their
# ratios together (only ratios of one call count: docs/PERFORMANCE.md).
#
# There, from the repository root, with the bundle of scripts/gpu_pack.sh (BUILD names the
# build folder it holds; unpacked unless its tool is there already):
#   BUNDLE=.carry/bundle.tar.xz VARIANTS='PGD_CUDA_WQ_FOLD_TMA=0;PGD_CUDA_WQ_FOLD_TMA=1' \
#     scripts/gpu_variants.sh
# VARIANTS: ';'-separated variants, each words of NAME=VALUE (empty: the defaults). For each:
#   1. the GPU test programs TESTS (default: test_cuda_quant test_cuda_quant_models) under
#      it, their synthesis and failures (TESTS= skips them);
#   2. ROUNDS (default 2) rounds of `pagoda bench latency --random-weights CONFIG STEP_ARGS`
#      (default: the 8B shape, --quantization gptq, batches 32-256), the variants in turn
#      within each round; then the same without STEP_QUANT (bf16) once, for the ratio;
#   3. with QUANT_ARGS (e.g. "--format w4g128 --fold-plans"), `pagoda bench quant QUANT_ARGS`;
#   4. with KTRACE_ARGS (e.g. "--batch 1 --prompt-len 128 --steps 32"), that step once more
#      under the kernel tracer (tools/ktrace): each graph's kernels, us a replay, a variant
#      beside the other (its table printed, the whole report with every node in the logs).
# TEST_UNDER and QUANT_UNDER (labels, e.g. "v0 v2"; default every variant) narrow steps 1
# and 3 to those variants: tests need one run where the switches are theirs to set, and
# bench quant only where a variable changes a kernel it times.
# OLD=an old libpagoda.so.0.xz (scripts/gpu_ab.sh --pack-old) adds the variant "old": the
# defaults under that library (its benches; the test programs link the library in). Every
# log goes to $OUT/variants.tgz (one file: the device brings back a few); the step lines
# print as "step LABEL round R: batch ms | batch ms | ...".
set -u
WT=${WT:-/work/main}
BUILD=${BUILD:-$WT/_build/g90}
OUT=${OUT:-/tmp/variants-out}
LOGS=$(mktemp -d) OLDLIB=$(mktemp -d)
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
trap 'tar czf "$OUT/variants.tgz" -C "$LOGS" .' EXIT
mkdir -p "$OUT"
if [ ! -x "$BUILD/tools/pagoda" ]; then
  tar -xJf "${BUNDLE:?BUNDLE=the bundle of scripts/gpu_pack.sh}" --absolute-names -C / ||
    { echo "gpu_variants.sh: cannot unpack $BUNDLE"; exit 1; }
fi
LIBS=$BUILD/.libs:$WT/_build/gpulibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PAGODA_LOG=${PAGODA_LOG:-warn}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
CONFIG=${CONFIG:-$WT/scripts/configs/llama-3-8b/config.json}
STEP_QUANT=${STEP_QUANT-"--quantization gptq"}
STEP_ARGS=${STEP_ARGS:---batch 32,64,96,128,192,256 --prompt-len 128 --steps 32}
TESTS=${TESTS-test_cuda_quant test_cuda_quant_models}

# The variants as labels v0, v1, ... (and "old"), each label's variables in env_of.
labels=()
declare -A env_of
IFS=';' read -r -a vars <<< "${VARIANTS:-}"
[ ${#vars[@]} -gt 0 ] || vars=("")
for i in "${!vars[@]}"; do labels+=("v$i"); env_of[v$i]=${vars[$i]}; done
if [ -n "${OLD:-}" ]; then
  xz -dc "$OLD" > "$OLDLIB/libpagoda.so.0" || exit 1
  labels+=(old); env_of[old]=""
fi
for l in "${labels[@]}"; do
  if [ "$l" = old ]; then echo "old: the defaults under $OLD"
  else echo "$l: ${env_of[$l]:-(the defaults)}"; fi
done

# under LABEL LIST: whether LABEL is among LIST's words (an empty LIST: every label).
under() {
  [ -z "$2" ] && return 0
  case " $2 " in *" $1 "*) return 0 ;; esac
  return 1
}

# run LABEL CMD...: CMD under the label's library path and variables.
run() {
  local l=$1 lp=$LIBS; shift
  [ "$l" = old ] && lp=$OLDLIB:$LIBS
  # shellcheck disable=SC2086  # the variant's words are NAME=VALUE pairs for env
  LD_LIBRARY_PATH=$lp env ${env_of[$l]} "$@"
}
# The decode lines of a bench latency log as "batch ms | ...".
steps() {
  awk '/^decode/ {d = 1; next} d && /^ *$/ {exit} d && /^ +[0-9]/ {printf "%s %s | ", $1, $2}' "$1"
}

status=0
cd "$BUILD" || exit 1
for l in "${labels[@]}"; do
  [ "$l" = old ] && continue       # the test programs link the library in: no old to run
  under "$l" "${TEST_UNDER:-}" || continue
  for t in $TESTS; do
    stamp "$t under $l"
    run "$l" timeout "${TEST_TIMEOUT:-240}" "./tests/gpu/$t" --verbose -j4 \
      ${TEST_FILTER:+--filter "$TEST_FILTER"} > "$LOGS/${t}_$l.log" 2>&1
    rc=$?
    # 77: every test skipped (no CUDA device), which on the device machine is a failure too
    [ $rc -eq 77 ] && echo "$t under $l: skipped, no CUDA device (exit 77)"
    [ $rc -eq 0 ] || status=1
    grep -E '^\[FAIL\]|Synthesis|Assertion|CRASH|signal|error while loading' "$LOGS/${t}_$l.log" | head -12
  done
done
# shellcheck disable=SC2086  # the argument strings are word lists
for r in $(seq "${ROUNDS:-2}"); do
  for l in "${labels[@]}"; do
    run "$l" timeout 200 ./tools/pagoda bench latency --random-weights "$CONFIG" $STEP_QUANT \
      $STEP_ARGS > "$LOGS/step_${l}_$r.txt" 2>&1 || status=1
    echo "step $l round $r: $(steps "$LOGS/step_${l}_$r.txt")"
  done
done
if [ -n "$STEP_QUANT" ]; then
  # shellcheck disable=SC2086
  LD_LIBRARY_PATH=$LIBS timeout 200 ./tools/pagoda bench latency --random-weights "$CONFIG" \
    $STEP_ARGS > "$LOGS/step_bf16.txt" 2>&1 || status=1
  echo "step bf16: $(steps "$LOGS/step_bf16.txt")"
fi
if [ -n "${QUANT_ARGS:-}" ]; then
  for l in "${labels[@]}"; do
    under "$l" "${QUANT_UNDER:-}" || continue
    stamp "bench quant $QUANT_ARGS under $l"
    # shellcheck disable=SC2086
    run "$l" timeout 200 ./tools/pagoda bench quant $QUANT_ARGS > "$LOGS/quant_$l.txt" 2>&1 ||
      status=1
  done
fi
if [ -n "${KTRACE_ARGS:-}" ]; then
  for l in "${labels[@]}"; do
    stamp "kernel trace under $l"
    # shellcheck disable=SC2086
    CUDA_INJECTION64_PATH=$BUILD/tools/ktrace/.libs/pgd_ktrace.so PGD_KTRACE_NODES=1 \
      PGD_KTRACE_OUT="$LOGS/ktrace_$l.txt" run "$l" timeout 200 ./tools/pagoda bench latency \
      --random-weights "$CONFIG" $STEP_QUANT $KTRACE_ARGS > "$LOGS/ktrace_step_$l.txt" 2>&1 ||
      status=1
    awk '/^ktrace: graph/ {p = 1} /nodes in order/ {p = 0} p' "$LOGS/ktrace_$l.txt" | cut -c1-140
  done
fi
stamp "done (status $status)"
exit $status
