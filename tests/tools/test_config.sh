#!/usr/bin/env bash
# The settings table from the command line: docs/CONFIG.md is what `pagoda config --print-doc`
# prints (the doc cannot drift from the table), `pagoda serve --help` groups the options as
# vLLM's does, a refused vLLM flag stops serve with what to use instead, and on a machine
# without a usable GPU --device auto says it picked the CPU while --device cuda fails clearly.
SUITE=config; . "$(dirname "$0")/../lib/harness.sh"
B=$BUILDDIR S=$SRCDIR P=$PAGODA
M="$S/tests/fixtures/models/tiny-chat"

"$P" config --print-doc >"$tmp/doc.md"
if cmp -s "$tmp/doc.md" "$S/docs/CONFIG.md"; then ok doc_matches_table
else ko doc_matches_table "docs/CONFIG.md differs from the table: run \`pagoda config --print-doc > docs/CONFIG.md\`
$(diff "$S/docs/CONFIG.md" "$tmp/doc.md" | head -20)"; fi

"$P" serve --help >"$tmp/help" 2>&1
if grep -q '^positional arguments:$' "$tmp/help" && grep -q '^ModelConfig:$' "$tmp/help" \
   && grep -q '^CacheConfig:$' "$tmp/help" && grep -q '^  --gpu-memory-utilization FRACTION' "$tmp/help" \
   && grep -q -- '--enable-prefix-caching, --no-enable-prefix-caching' "$tmp/help"; then
  ok help_grouped_as_vllm
else ko help_grouped_as_vllm "$(head -30 "$tmp/help")"; fi

"$P" serve "$M" --pipeline-parallel-size 2 >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q -- '--pipeline-parallel-size is a vLLM option pagoda does not support: pagoda splits a model by tensor parallelism only' "$tmp/out"; then
  ok refused_flag
else ko refused_flag "rc $rc: $(cat "$tmp/out")"; fi

"$P" config --print "$M" --max-model-len 8k --api-key secret >"$tmp/print" 2>&1
if grep -q '^max_model_len = 8000    ; --max-model-len$' "$tmp/print" \
   && grep -q '^block_size = 16    ; default$' "$tmp/print" \
   && grep -q '^model = .*tiny-chat    ; MODEL$' "$tmp/print" \
   && ! grep -q secret "$tmp/print"; then
  ok print_effective
else ko print_effective "$(cat "$tmp/print")"; fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[SKIP] config::cpu_only_device_choice: this machine has a GPU"
else
  "$P" serve "$M" --device cuda --port 0 >"$tmp/out" 2>&1; rc=$?
  if [ $rc -eq 1 ] && grep -q 'pagoda serve: --device cuda: .*use --device cpu' "$tmp/out"; then
    ok device_cuda_fails_clearly
  else ko device_cuda_fails_clearly "rc $rc: $(cat "$tmp/out")"; fi
  # --device auto on this machine: the CPU, said so before the engine starts (an unknown
  # frontend plugin then stops serve before it loads anything).
  "$P" serve "$M" --frontend none --port 0 --uvicorn-log-level info >"$tmp/out" 2>&1
  if grep -q 'device: cpu (.*) (--device auto)' "$tmp/out"; then
    ok device_auto_picks_cpu
  else ko device_auto_picks_cpu "$(cat "$tmp/out")"; fi
  "$P" serve "$M" --dtype bfloat16 --frontend none --port 0 >"$tmp/out" 2>&1
  if grep -q 'warn\] --dtype bfloat16: the CPU backend computes in float32' "$tmp/out"; then
    ok cpu_dtype_warns
  else ko cpu_dtype_warns "$(cat "$tmp/out")"; fi
fi

# Accepted vLLM flags that change nothing say so.
"$P" serve "$M" --trust-remote-code --root-path /api --frontend none --port 0 \
  --uvicorn-log-level info >"$tmp/out" 2>&1
if grep -q 'warn\] --trust-remote-code: accepted and ignored' "$tmp/out" \
   && grep -q 'warn\] --root-path /api: accepted and ignored' "$tmp/out"; then
  ok accepted_flags_warn
else ko accepted_flags_warn "$(cat "$tmp/out")"; fi

finish
