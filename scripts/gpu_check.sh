#!/bin/bash
# The GPU machine's part of the CUDA backend's checks, in one call:
#   1. the kernel tests (each kernel against its CPU twin) and the fixture models on the GPU,
#   2. `pagoda generate` on the GPU,
#   3. the latency benchmark on a random-weight Llama-3-8B shape,
#   4. transformers' generate on the same shape (optional: HF=1),
#   5. compute-sanitizer memcheck and racecheck on the kernel tests (optional: SAN=1),
#   6. `pagoda bench throughput` through the engine (optional: TPUT=1; TPUT_ARGS), and
#      transformers' batched generate for comparison (optional: HF_TPUT=batch,list).
# GRAPHS_VARIANTS="0 1" runs the latency benchmark without and with CUDA graphs; TPUT_SG=0
# skips the ShareGPT-shaped throughput run; SAN_TOOLS picks the sanitizer tools;
# SAN_MODELS_FILTER also runs memcheck on the model tests it selects.
# TESTS=1 runs every GPU test program; ENGINE_ONLY=1 only tests/gpu/test_cuda_engine;
# KERNELS_ONLY=1 only tests/gpu/test_cuda_kernels. NCU="name:bench-args;name:bench-args" times every
# kernel of `pagoda bench latency BENCH-ARGS` (eager) with Nsight Compute into $OUT/ncu-NAME.csv. GEMV_BENCH=1 runs `pagoda bench gemv` (the
# decode GEMV kernels alone) first; GEMV_KERNELS="warp split" runs the latency benchmark with
# each PGD_CUDA_GEMV kernel; SASS=1 saves the GEMV kernels' disassembly.
# Run from the repository root on the GPU machine with the bundle from scripts/gpu_pack.sh
# in $BUNDLE; logs go to $OUT.
set -u
OUT=${OUT:-/tmp/pgd-out}
mkdir -p "$OUT"
WT=${WT:-/work/main}
B=${B:-$WT/_build/gpu}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
tar -xJf "$BUNDLE" --absolute-names -C / || { echo "cannot unpack $BUNDLE"; exit 1; }
export LD_LIBRARY_PATH=$B/.libs:$WT/_build/gpulibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ! ldconfig -p | grep -q libcublasLt.so.13 && [ ! -e /usr/local/cuda/lib64/libcublasLt.so.13 ]; then
  d=$(dirname "$(find / -name 'libcublasLt.so.13' -not -path '/proc/*' 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
export PAGODA_LOG=${PAGODA_LOG:-warn}
cd "$B"
status=0
if [ "${TESTS:-1}" = 1 ] || [ "${ENGINE_ONLY:-0}" = 1 ]; then
  stamp "engine tests"
  timeout 400 ./tests/gpu/test_cuda_engine --verbose -j2 > "$OUT/engine.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal|cuda_engine:" "$OUT/engine.log" | head -30
  echo "test_cuda_engine rc=$rc"; [ $rc -eq 0 ] || status=1
fi
if [ "${SASS:-0}" = 1 ]; then
  cuobjdump -arch sm_90 -sass .libs/libpagoda.so 2>/dev/null | awk '/Function : .*gemv/{p=1} /Function : /&&!/gemv/{p=0} p' > "$OUT/gemv.sass"
  echo "gemv SASS: $(grep -c 'Function :' "$OUT/gemv.sass") functions, $(grep -c LDG "$OUT/gemv.sass") LDG"
fi
if [ "${ATTN_BENCH:-0}" = 1 ]; then
  stamp "bench attention"
  timeout 200 ./tools/pagoda bench attention ${ATTN_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-attention.txt"
fi
if [ "${GEMV_BENCH:-0}" = 1 ]; then
  stamp "bench gemv"
  timeout 200 ./tools/pagoda bench gemv 2>&1 | tee "$OUT/bench-gemv.txt"
fi
if [ "${KERNELS_ONLY:-0}" = 1 ]; then
  stamp "kernel tests"
  timeout 300 ./tests/gpu/test_cuda_kernels --verbose -j4 > "$OUT/kernels.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal" "$OUT/kernels.log" | head -40
  echo "test_cuda_kernels rc=$rc"; [ $rc -eq 0 ] || status=1
fi
if [ -n "${NCU:-}" ]; then
  echo "$NCU" | tr ';' '\n' | while IFS=: read -r name args; do
    stamp "ncu $name: bench latency $args"
    PAGODA_CUDA_GRAPHS=0 timeout ${NCU_TIMEOUT:-200} ncu --clock-control none --csv --page raw \
        --metrics gpu__time_duration.sum ./tools/pagoda bench latency \
        --random-weights $WT/scripts/configs/llama-3-8b/config.json $args \
        > "$OUT/ncu-$name.csv" 2> "$OUT/ncu-$name.err"; echo "ncu $name rc=$? $(wc -l < "$OUT/ncu-$name.csv") lines"
    tail -3 "$OUT/ncu-$name.err"
  done
fi
if [ "${TESTS:-1}" = 1 ]; then
  stamp "kernel tests"
  timeout 300 ./tests/gpu/test_cuda_kernels --verbose -j4 > "$OUT/kernels.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal" "$OUT/kernels.log" | head -40
  echo "test_cuda_kernels rc=$rc"; [ $rc -eq 0 ] || status=1
  stamp "attention tests"
  timeout 300 ./tests/gpu/test_cuda_attention --verbose -j4 > "$OUT/attention.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal" "$OUT/attention.log" | head -40
  echo "test_cuda_attention rc=$rc"; [ $rc -eq 0 ] || status=1
  stamp "sampling tests"
  timeout 300 ./tests/gpu/test_cuda_sample --verbose -j4 > "$OUT/sample.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal|boundary|chi-square" "$OUT/sample.log" | head -40
  echo "test_cuda_sample rc=$rc"; [ $rc -eq 0 ] || status=1
  # GPU test programs added later than the ones above (e.g. test_cuda_glu), if built.
  for t in ./tests/gpu/test_cuda_*; do
    n=$(basename "$t")
    case $n in test_cuda_engine|test_cuda_kernels|test_cuda_attention|test_cuda_sample|test_cuda_models) continue ;; esac
    stamp "$n"
    timeout 300 "$t" --verbose -j4 > "$OUT/$n.log" 2>&1; rc=$?
    grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal" "$OUT/$n.log" | head -40
    echo "$n rc=$rc"; [ $rc -eq 0 ] || status=1
  done
  stamp "model tests"
  timeout 300 ./tests/gpu/test_cuda_models --verbose -j4 > "$OUT/models.log" 2>&1; rc=$?
  grep -E "^\[(FAIL|SKIP|----)\]|Synthesis|Assertion|CRASH|signal|near-tie" "$OUT/models.log" | head -60
  echo "test_cuda_models rc=$rc"; [ $rc -eq 0 ] || status=1
  stamp "generate"
  ids=$(python3 -c "import json;print(','.join(map(str,json.load(open('$WT/tests/fixtures/models/llama-bf16/reference.json'))['cases'][2]['prompt'])))")
  PAGODA_LOG=info ./tools/pagoda generate --model $WT/tests/fixtures/models/llama-bf16 \
      --prompt-ids "$ids" --max-tokens 12 --ignore-eos 2>&1 | tail -4
  python3 -c "import json;print('reference  ', json.load(open('$WT/tests/fixtures/models/llama-bf16/reference.json'))['cases'][2]['native']['greedy'][:12])"
fi
if [ "${BENCH:-1}" = 1 ]; then
  # GEMV_VARIANTS: the largest batch the GEMV kernel takes (the rest go to cuBLASLt).
  # GRAPHS_VARIANTS: PAGODA_CUDA_GRAPHS values to run with (1: decode steps replay CUDA
  # graphs, 0: every kernel launched one by one).
  for gr in ${GRAPHS_VARIANTS:-1}; do
  for g in ${GEMV_VARIANTS:-default}; do
  for k in ${GEMV_KERNELS:-default}; do
    stamp "bench (PGD_CUDA_GEMV_MAX_N=$g, PGD_CUDA_GEMV=$k, PAGODA_CUDA_GRAPHS=$gr)"
    [ $g = default ] && g=
    [ $k = default ] && k=
    PAGODA_CUDA_GRAPHS=$gr PGD_CUDA_GEMV_MAX_N=$g PGD_CUDA_GEMV=$k PAGODA_LOG=info timeout 300 \
        ./tools/pagoda bench latency \
        --random-weights $WT/scripts/configs/llama-3-8b/config.json ${BENCH_ARGS:-} \
        2>&1 | grep -v "cuda graphs: captured" | tee "$OUT/bench-gemv${g:-default}-${k:-default}-graphs$gr.txt"
  done
  done
  done
fi
if [ "${HF:-0}" = 1 ]; then
  stamp "transformers"
  PYTHONUNBUFFERED=1 timeout 300 python3 $WT/scripts/hf_decode_bench.py \
      $WT/scripts/configs/llama-3-8b/config.json 2>&1 | grep -v Warning | tee "$OUT/hf.txt"
fi
if [ "${TPUT:-0}" = 1 ]; then
  stamp "bench throughput, 128 in / 128 out"
  PAGODA_LOG=info timeout 300 ./tools/pagoda bench throughput \
      --random-weights $WT/scripts/configs/llama-3-8b/config.json --num-prompts ${TPUT_N:-2000} \
      --input-len 128 --output-len 128 ${TPUT_ARGS:-} 2>&1 | tee "$OUT/tput-fixed.txt"
  [ "${TPUT_SG:-1}" = 1 ] && stamp "bench throughput, sharegpt-shaped" && PAGODA_LOG=info timeout 300 ./tools/pagoda bench throughput \
      --random-weights $WT/scripts/configs/llama-3-8b/config.json --num-prompts ${TPUT_SG_N:-1000} \
      --dataset sharegpt ${TPUT_ARGS:-} 2>&1 | tee "$OUT/tput-sharegpt.txt"
fi
if [ -n "${HF_TPUT:-}" ]; then
  stamp "transformers batched generate"
  PYTHONUNBUFFERED=1 timeout 400 python3 $WT/scripts/hf_decode_bench.py \
      $WT/scripts/configs/llama-3-8b/config.json --throughput $HF_TPUT 2>&1 | grep -v Warning | tee "$OUT/hf-tput.txt"
fi
if [ "${SAN:-0}" = 1 ]; then
  for tool in ${SAN_TOOLS:-memcheck racecheck}; do
    stamp "compute-sanitizer $tool"
    [ $tool = racecheck ] && SAN_FILTER=${RACE_FILTER:-}
    timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool $tool --target-processes all \
        --error-exitcode 9 ./tests/gpu/test_cuda_kernels -j2 --verbose \
        ${SAN_FILTER:+--filter "$SAN_FILTER"} > "$OUT/sanitizer-$tool.log" 2>&1; rc=$?
    grep -E "Synthesis|ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race|FAIL" "$OUT/sanitizer-$tool.log" | head -12
    echo "compute-sanitizer $tool rc=$rc"
    timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool $tool --target-processes all \
        --error-exitcode 9 ./tests/gpu/test_cuda_attention -j2 --verbose \
        > "$OUT/sanitizer-$tool-attention.log" 2>&1; rc=$?
    grep -E "Synthesis|ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Race|FAIL" "$OUT/sanitizer-$tool-attention.log" | head -12
    echo "compute-sanitizer $tool (attention) rc=$rc"
  done
  if [ -n "${SAN_MODELS_FILTER:-}" ]; then
    stamp "compute-sanitizer memcheck on the model tests ($SAN_MODELS_FILTER)"
    timeout ${SAN_TIMEOUT:-150} compute-sanitizer --tool memcheck --target-processes all \
        --error-exitcode 9 ./tests/gpu/test_cuda_models -j2 --verbose \
        --filter "$SAN_MODELS_FILTER" > "$OUT/sanitizer-models.log" 2>&1; rc=$?
    grep -E "Synthesis|ERROR SUMMARY|Invalid|FAIL" "$OUT/sanitizer-models.log" | head -12
    echo "compute-sanitizer memcheck (models) rc=$rc"
  fi
fi
stamp "done (status $status)"
exit $status
