#!/bin/bash
# The GPU machine's checks of `pagoda serve` (issue 15), run after scripts/gpu_check.sh has
# unpacked the bundle (same B, WT, OUT):
#   1. the device, dtype and KV-sizing lines of a server on the GPU;
#   2. readiness: /health answers 503 until every decode graph is captured, then 200, and
#      traffic afterwards captures nothing more;
#   3. the HTTP suites that need no extra Python package, on the GPU (--device auto);
#   4. the serving path against the offline engine on the Llama-3-8B shape with random
#      weights (--load-format dummy), 1,000 requests of 128 in / 128 out: `pagoda bench
#      throughput` beside `pagoda serve` + `pagoda bench serve --request-rate inf` (SERVE8B=0
#      skips it). BASIC=0 skips 1-3 (a second call of the same lease).
# Prints one line per check and a closing status.
set -u
OUT=${OUT:-/tmp/pgd-out}
WT=${WT:-/work/main}
B=${B:-$WT/_build/gpu}
export LD_LIBRARY_PATH=$B/.libs:$WT/_build/gpulibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PAGODA_LOG=${PAGODA_LOG:-info}
cd "$B" || exit 1
P=./tools/pagoda
M=$WT/tests/fixtures/models/tiny-chat
status=0
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; status=1; fi; }
# curl: the one gpu_pack.sh carries in gpulibs/bin, which matches the libcurl that
# LD_LIBRARY_PATH puts first (the machine's own fails against it, or is missing).
[ -x "$WT/_build/gpulibs/bin/curl" ] && export PATH=$WT/_build/gpulibs/bin:$PATH
command -v curl >/dev/null || { echo "FAIL no curl on this machine"; exit 1; }
# wait_health PORT PID: until /health is 200; gives up when the server exits or after
# HEALTH_WAIT seconds (default 120), printing the end of its log.
wait_health() {
  local end=$(( $(date +%s) + ${HEALTH_WAIT:-120} ))
  while [ "$(date +%s)" -lt $end ]; do
    curl -sf "localhost:$1/health" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "server on port $1 exited before /health was 200"; return 1; }
    sleep 0.1
  done
  echo "server on port $1: /health not 200 after ${HEALTH_WAIT:-120} s"
  return 1
}

if [ "${BASIC:-1}" = 1 ]; then
stamp "1. device, dtype, KV sizing"
$P serve "$M" --port 8001 --max-model-len 512 --gpu-memory-utilization 0.9 >"$OUT/serve1.log" 2>&1 &
pid=$!
wait_health 8001 $pid || tail -5 "$OUT/serve1.log"; kill -TERM $pid; wait $pid; rc=$?
grep -E 'device: |GPU KV cache size|Maximum concurrency' "$OUT/serve1.log"
check "serve picks the GPU (--device auto)" "grep -q 'device: cuda:0 (NVIDIA' '$OUT/serve1.log'"
check "vLLM's KV lines" "grep -q 'GPU KV cache size: [0-9,]* tokens' '$OUT/serve1.log' && grep -q 'Maximum concurrency for 512 tokens per request' '$OUT/serve1.log'"
check "SIGTERM exits 0" "[ $rc = 0 ]"
$P serve "$M" --port 8009 --dtype float32 >"$OUT/serve-f32.log" 2>&1; rc=$?
check "--dtype float32 refused on the GPU (rc $rc)" "[ $rc != 0 ] && grep -q float32 '$OUT/serve-f32.log'"
$P serve "$M" --port 8008 --kv-cache-memory 1G >"$OUT/serve-kv.log" 2>&1 &
pid=$!
wait_health 8008 $pid || tail -5 "$OUT/serve-kv.log"; kill -TERM $pid; wait $pid
check "--kv-cache-memory 1G sizes the pool" "grep -q '1.00 GiB' '$OUT/serve-kv.log'"

stamp "2. graphs captured before /health is 200"
$P serve "$M" --port 8002 >"$OUT/serve2.log" 2>&1 &
pid=$!
: >"$OUT/health-codes.txt"
for _ in $(seq 3000); do
  c=$(curl -s -o /dev/null -w '%{http_code}' localhost:8002/health)
  echo "$c" >>"$OUT/health-codes.txt"
  [ "$c" = 200 ] && break
  kill -0 $pid 2>/dev/null || { echo "server exited while starting"; tail -5 "$OUT/serve2.log"; break; }
  sleep 0.01
done
echo "health answers while starting: $(uniq -c "$OUT/health-codes.txt" | tr -s ' \n' ' ')"
n=$(grep -c 'captured decode' "$OUT/serve2.log")
grep -E 'cuda graphs: capturing|graphs captured in|cuda graphs: [0-9]+' "$OUT/serve2.log" | head -3
check "graphs captured before ready ($n)" "[ $n -gt 0 ]"
for _ in $(seq 32); do
  curl -s localhost:8002/v1/completions -H 'content-type: application/json' \
    -d '{"prompt": "hi", "max_tokens": 40}' >/dev/null &
done
wait_jobs() { for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j"; done; }
wait_jobs
m=$(grep -c 'captured decode' "$OUT/serve2.log")
check "no capture during traffic ($n then $m)" "[ $n = $m ]"
kill -TERM $pid; wait $pid
$P serve "$M" --port 8003 --enforce-eager >"$OUT/serve-eager.log" 2>&1 &
pid=$!
wait_health 8003 $pid || tail -5 "$OUT/serve-eager.log"; kill -TERM $pid; wait $pid
check "--enforce-eager captures nothing" "! grep -q 'captured decode' '$OUT/serve-eager.log'"

stamp "3. HTTP suites on the GPU"
for t in test_http_serve.py test_http_curl.sh test_http_badinput.py; do
  PGD_BUILDDIR=$B PGD_SRCDIR=$WT PAGODA_LOG=warn timeout 150 "$WT/tests/http/$t" \
    >"$OUT/$t.log" 2>&1; rc=$?
  grep -a 'Synthesis' "$OUT/$t.log" | tail -1
  check "$t on the GPU (rc $rc)" "[ $rc = 0 ]"
done

fi

if [ "${SERVE8B:-1}" = 1 ]; then
  stamp "4. Llama-3-8B shape, random weights: offline vs served, 1000 x 128/128"
  CFG=$WT/scripts/configs/llama-3-8b/config.json
  L8B=/tmp/l8b
  # The tokenizer must cover the model's 128,256 ids, or most generated tokens decode to
  # nothing and a stream sends no text until its end (the fixture's llama3_style has 3,325):
  # L8B_TOKENIZER names a directory with Llama-3's own (../shared/data/tokenizers/llama3).
  mkdir -p $L8B && cp "$CFG" $L8B/ && cp "${L8B_TOKENIZER:-$WT/tests/fixtures/tokenizer/llama3_style}"/* $L8B/
  [ -n "${L8B_TOKENIZER:-}" ] || echo "note: llama3_style covers 3,325 of 128,256 ids: streamed text comes at the end"
  timeout 400 $P bench throughput --random-weights "$CFG" --num-prompts 1000 --input-len 128 \
      --output-len 128 2>&1 | tee "$OUT/tput-offline.txt" | grep -Ei 'output tok|requests/s|floor'
  $P serve $L8B --load-format dummy --port 8010 --served-model-name l8b \
      --disable-log-requests >"$OUT/serve8b.log" 2>&1 &
  pid=$!
  ts=$(date +%s.%N)
  HEALTH_WAIT=300 wait_health 8010 $pid || tail -5 "$OUT/serve8b.log"
  te=$(date +%s.%N)
  echo "serve start to /health 200: $(python3 -c "print(round($te - $ts, 1))") s"
  grep -E 'loaded |GPU KV cache size|Maximum concurrency|graphs captured in|cuda graphs' "$OUT/serve8b.log" | head -6
  timeout 400 $P bench serve --port 8010 --model l8b --dataset-name random --num-prompts 1000 \
      --random-input-len 128 --random-output-len 128 --request-rate inf --save-result \
      --result-dir "$OUT" --result-filename serve8b.json 2>&1 | tee "$OUT/bench-serve.txt" | tail -30
  # The same at max_num_seqs in flight, with the client's CPU time: a client that cannot
  # keep up reads many tokens per wake-up, which shows as near-zero median TPOT/ITL.
  ( time timeout 300 $P bench serve --port 8010 --model l8b --dataset-name random \
      --num-prompts 1000 --random-input-len 128 --random-output-len 128 --request-rate inf \
      --max-concurrency 256 ) 2>&1 | tee "$OUT/bench-serve-256.txt" |
      grep -E 'Output token throughput|TTFT|TPOT|ITL|^real|^user|^sys'
  kill -TERM $pid; wait $pid
fi
stamp "done (status $status)"
exit $status
