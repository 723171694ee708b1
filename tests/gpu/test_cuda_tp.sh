#!/usr/bin/env bash
# Tensor parallelism on several GPUs of one host (`make check-gpu-tp`; not in `make check`,
# which has no GPUs): for N = 2, 4, 8 up to the GPUs present,
#   - `pagoda bench allreduce` under `mpirun -np N` over NCCL: every size's check right
#     (#wrong 0), the table printed for the record;
#   - `pagoda generate --tensor-parallel-size N` (CUDA graphs on: the decode steps replay
#     graphs with the NCCL collectives in them) prints the single GPU's greedy tokens, on a
#     dense fixture and on a GPTQ one (N = 2: the tiny fixtures' 4-bit groups of 32 must
#     stay whole for the CUDA kernels), and every rank captured its graphs.
# bf16 on the GPU sums in another order when split, so a greedy token at a near-tie can
# differ; a FAIL here prints both outputs to look at. Skips (77) without MPI, mpirun or two
# GPUs. NCCL_NVLS_ENABLE=0 as everywhere the project starts NCCL.
SUITE=cuda_tp; . "$(dirname "$0")/../lib/harness.sh"
B=$BUILDDIR S=$SRCDIR P=$PAGODA
export NCCL_NVLS_ENABLE=0 PAGODA_LOG=${PAGODA_LOG:-warn}
if [ ! -x "$B/tests/dist/test_comm" ]; then echo "SKIP: this build has no MPI"; exit 77; fi
if ! command -v mpirun >/dev/null 2>&1; then echo "SKIP: mpirun is not on PATH"; exit 77; fi
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
if [ "${gpus:-0}" -lt 2 ]; then echo "SKIP: $gpus GPU(s): tensor parallelism needs 2 or more"; exit 77; fi
if [ "$(id -u)" -eq 0 ]; then
  OMPI_ALLOW_RUN_AS_ROOT=1; OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
MPIRUN="mpirun --bind-to none -x NCCL_NVLS_ENABLE -x PAGODA_LOG"

cat >"$tmp/prompts.jsonl" <<'JSONL'
{"prompt_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "max_tokens": 12, "ignore_eos": true}
{"prompt_ids": [200, 17], "max_tokens": 16, "ignore_eos": true}
{"prompt_ids": [5, 99, 42, 42, 42, 7, 3, 250, 1], "max_tokens": 8, "ignore_eos": true}
JSONL

for np in 2 4 8; do
  [ "$np" -le "$gpus" ] || continue
  rc=0
  timeout 300 $MPIRUN -np $np "$P" bench allreduce --device cuda -b 8 -e 256M >"$tmp/ar" 2>&1 || rc=$?
  cat "$tmp/ar"
  if [ $rc -eq 0 ] && grep -q "^# pagoda bench allreduce: $np ranks, cuda (NCCL)" "$tmp/ar" \
     && grep -q 'Out of bounds values : 0 OK' "$tmp/ar"; then ok "bench_allreduce_np$np"
  else ko "bench_allreduce_np$np" "rc $rc: $(tail -n 20 "$tmp/ar")"; fi
done

check_generate() {   # NAME MODEL_DIR NP
  local gen="--model $2 --prompts-file $tmp/prompts.jsonl --device cuda --ids"
  PAGODA_LOG=info "$P" generate $gen >"$tmp/single" 2>"$tmp/single.err"
  local rc=0
  PAGODA_LOG=info timeout 300 $MPIRUN -np "$3" "$P" generate $gen --tensor-parallel-size "$3" \
    >"$tmp/split" 2>"$tmp/split.err" || rc=$?
  if [ $rc -eq 0 ] && [ -s "$tmp/single" ] && cmp -s "$tmp/single" "$tmp/split" \
     && grep -q 'cuda graphs: .* captured in' "$tmp/split.err"; then ok "generate_$1_np$3"
  else ko "generate_$1_np$3" "rc $rc: single vs split: $(diff "$tmp/single" "$tmp/split" | head -10) $(grep -i 'error\|warn' "$tmp/split.err" | head -10)"; fi
}
for np in 2 4 8; do
  [ "$np" -le "$gpus" ] || continue
  check_generate llama-bf16 "$S/tests/fixtures/models/llama-bf16" $np
done
check_generate gptq-g32 "$S/tests/fixtures/quant/llama-gptq-4b-g32-sym" 2

finish
