#!/usr/bin/env bash
# Tensor parallelism over MPI on the CPU (tests/dist/local.mk says what each part checks):
# test_comm and test_tp_models under `mpirun -np 2` and `-np 4`, then `pagoda generate
# --tensor-parallel-size N` (the engine's scheduler on rank 0, each step broadcast to the
# workers) against the single-process output on several prompts at once, and the refusal
# of a group size mpirun did not start. Skips (77) when the build has no MPI (no test
# programs) or mpirun is missing.
SUITE=dist; . "$(dirname "$0")/../lib/harness.sh"
B=$BUILDDIR S=$SRCDIR P=$PAGODA
if [ ! -x "$B/tests/dist/test_comm" ]; then
  echo "SKIP: this build has no MPI (configure found no Open MPI: libopenmpi-dev openmpi-bin)"
  exit 77
fi
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun is not on PATH (Debian: openmpi-bin)"
  exit 77
fi
# Open MPI refuses to start as root unless told twice (CI containers run as root).
if [ "$(id -u)" -eq 0 ]; then
  OMPI_ALLOW_RUN_AS_ROOT=1; OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM
fi
# ASan builds: Open MPI keeps what MPI_Init allocates until exit; suppress those stacks (and
# only those: lsan_openmpi.supp), with the slow unwinder, which reaches through its frames.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$S/tests/dist/lsan_openmpi.supp:fast_unwind_on_malloc=0"
export ASAN_OPTIONS LSAN_OPTIONS
# More ranks than cores is fine for these tiny models; no network probing in containers.
MPIRUN="mpirun --oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none"

# The programs print "dist: NAME np=N: P passed, F failed" on rank 0.
for np in 2 4; do
  for prog in test_comm test_tp_models; do
    rc=0
    timeout 300 $MPIRUN -np $np "$B/tests/dist/$prog" >"$tmp/out" 2>&1 || rc=$?
    line=$(grep '^dist: ' "$tmp/out" | tail -n 1)
    if [ $rc -eq 0 ] && echo "$line" | grep -q ' 0 failed$'; then
      ok "${prog}_np$np ($line)"
    else
      ko "${prog}_np$np" "rc $rc: $(tail -n 30 "$tmp/out")"
    fi
  done
done

# The engine end to end: three prompts of different lengths at once, chunked prefill (a
# budget of 8 tokens a step), greedy; the split runs must print the single run's tokens.
M="$S/tests/fixtures/models/qwen2-f32"
cat >"$tmp/prompts.jsonl" <<'JSONL'
{"prompt_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], "max_tokens": 10, "ignore_eos": true}
{"prompt_ids": [200, 17], "max_tokens": 12, "ignore_eos": true}
{"prompt_ids": [5, 99, 42, 42, 42, 7, 3, 250, 1], "max_tokens": 8, "ignore_eos": true}
JSONL
GEN="--model $M --prompts-file $tmp/prompts.jsonl --device cpu --ids --max-num-batched-tokens 8"
"$P" generate $GEN >"$tmp/single" 2>"$tmp/single.err"
if [ -s "$tmp/single" ]; then
  for np in 2 4; do
    rc=0
    timeout 120 $MPIRUN -np $np "$P" generate $GEN --tensor-parallel-size $np \
      >"$tmp/split" 2>"$tmp/split.err" || rc=$?
    if [ $rc -eq 0 ] && cmp -s "$tmp/single" "$tmp/split"; then ok "generate_np$np"
    else ko "generate_np$np" "rc $rc: $(diff "$tmp/single" "$tmp/split" | head -10) $(tail -n 20 "$tmp/split.err")"; fi
  done
else
  ko generate_single "$(tail -n 20 "$tmp/single.err")"
fi

# Quantized checkpoints end to end: GPTQ with act-order on Llama, AWQ on Qwen2 (biases),
# greedy, split over 2 and 4 ranks, print the single process's tokens.
for q in llama-gptq-4b-g64-asym-act qwen2-awq-g64-file; do
  QG="--model $S/tests/fixtures/quant/$q --prompts-file $tmp/prompts.jsonl --device cpu --ids --max-num-batched-tokens 8"
  "$P" generate $QG >"$tmp/qsingle" 2>"$tmp/qsingle.err"
  for np in 2 4; do
    rc=0
    timeout 120 $MPIRUN -np $np "$P" generate $QG --tensor-parallel-size $np \
      >"$tmp/qsplit" 2>"$tmp/qsplit.err" || rc=$?
    if [ $rc -eq 0 ] && [ -s "$tmp/qsingle" ] && cmp -s "$tmp/qsingle" "$tmp/qsplit"; then ok "generate_${q}_np$np"
    else ko "generate_${q}_np$np" "rc $rc: $(diff "$tmp/qsingle" "$tmp/qsplit" | head -10) $(tail -n 20 "$tmp/qsplit.err" "$tmp/qsingle.err")"; fi
  done
done

# compressed-tensors pack-quantized layers do not shard yet: refused, saying so.
rc=0
timeout 60 $MPIRUN -np 2 "$P" generate --model "$S/tests/fixtures/quant/llama-ct-w4a16-g32-sym" \
  --prompt-ids 1,2 --device cpu --tensor-parallel-size 2 >"$tmp/out" 2>&1 || rc=$?
if [ $rc -ne 0 ] && grep -q 'tensor-parallel shard of a compressed-tensors pack-quantized layer' "$tmp/out"; then
  ok refuses_ct_packed_split
else ko refuses_ct_packed_split "rc $rc: $(tail -n 20 "$tmp/out")"; fi

# `pagoda serve` split over 2 ranks: only rank 0 listens; a completion is the single
# process's text; SIGTERM to mpirun drains rank 0, which ends the worker.
T="$S/tests/fixtures/models/tiny-chat"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$MPIRUN -np 2 "$P" serve "$T" --port "$port" --device cpu --tensor-parallel-size 2 \
  >"$tmp/serve.out" 2>&1 &
mpid=$!
up=no
for _ in $(seq 1 150); do
  if curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" 2>/dev/null | grep -q 200; then up=yes; break; fi
  sleep 0.2
done
want=$("$P" generate --model "$T" --prompt "hello there" --max-tokens 8 --device cpu 2>/dev/null)
got=$(curl -s "http://127.0.0.1:$port/v1/completions" -H 'content-type: application/json' \
  -d '{"model": "tiny-chat", "prompt": "hello there", "max_tokens": 8, "temperature": 0}' \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["choices"][0]["text"])' 2>&1)
kill -TERM $mpid 2>/dev/null
for _ in $(seq 1 100); do kill -0 $mpid 2>/dev/null || break; sleep 0.1; done
kill -0 $mpid 2>/dev/null && { kill -KILL $mpid; ko serve_np2_stops "still running 10 s after SIGTERM"; }
if [ $up = yes ] && [ -n "$want" ] && [ "$got" = "$want" ] && [ "$(grep -c 'listening on' "$tmp/serve.out")" -eq 1 ] \
   && grep -q 'pagoda serve: stopped' "$tmp/serve.out"; then
  ok serve_np2
else ko serve_np2 "up $up, want '$want', got '$got': $(tail -n 20 "$tmp/serve.out")"; fi

# `pagoda bench allreduce` over MPI: a row per size from 8 B to 64 KiB (doubling), every
# rank's check right (#wrong 0), and busbw = algbw * 2(n-1)/n as nccl-tests defines it.
for np in 2 4; do
  rc=0
  timeout 60 $MPIRUN -np $np "$P" bench allreduce --device cpu -b 8 -e 64K -n 3 -w 1 \
    >"$tmp/ar" 2>"$tmp/ar.err" || rc=$?
  rows=$(awk '/^ *[0-9]/ && $4 == "sum"' "$tmp/ar" | wc -l)
  bad=$(awk -v n=$np '/^ *[0-9]/ && $4 == "sum" { want = $6 * 2 * (n - 1) / n; d = $7 - want;
        if (d < 0) d = -d; if (NF != 8 || $8 != 0 || $3 != "F32" || d > 0.011 + 0.001 * want) print }' "$tmp/ar")
  if [ $rc -eq 0 ] && [ "$rows" -eq 14 ] && [ -z "$bad" ] && grep -q "^# pagoda bench allreduce: $np ranks, cpu (MPI)" "$tmp/ar" \
     && grep -q 'Out of bounds values : 0 OK' "$tmp/ar"; then ok "bench_allreduce_np$np"
  else ko "bench_allreduce_np$np" "rc $rc, $rows rows, bad: $bad $(tail -n 20 "$tmp/ar" "$tmp/ar.err")"; fi
done

# A group size that mpirun did not start is refused, saying how to launch.
rc=0
timeout 60 $MPIRUN -np 2 "$P" generate --model "$M" --prompt-ids 1,2 --device cpu \
  --tensor-parallel-size 4 >"$tmp/out" 2>&1 || rc=$?
if [ $rc -ne 0 ] && grep -q 'tensor_parallel_size 4, but mpirun started 2 processes: run `mpirun -np 4' "$tmp/out"; then
  ok refuses_wrong_world
else ko refuses_wrong_world "rc $rc: $(tail -n 20 "$tmp/out")"; fi

finish
