#!/usr/bin/env bash
# `pagoda bench throughput` on the CPU with the tiny Llama fixture: the report's counts agree
# with the workload (every request generates its output length, the engine counted the
# same tokens), its rates agree with its counts and time, the ShareGPT-shaped lengths keep
# their caps and are reproducible from the seed, and a pool small enough to preempt still
# finishes everything. Prints a Criterion-style synthesis line.
set -u
SUITE=bench_throughput
. "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/llama-f32
# check NAME JSON PYTHON-EXPRESSION (over the report's keys)
check() {
  local out
  if out=$(python3 -c "
import json, sys
r = json.load(open('$2'))
ok = eval(sys.argv[1], {}, r)
print('' if ok else 'false: ' + sys.argv[1] + ' with ' + json.dumps(r))
" "$3" 2>&1) && [ -z "$out" ]; then ok "$1"; else ko "$1" "$out"; fi
}
bench() {
  "$PAGODA" bench throughput --model "$MODEL" --device cpu --warmup 2 "$@" >"$tmp/log" 2>&1 ||
    { cat "$tmp/log"; return 1; }
}

if bench --num-prompts 24 --input-len 9 --output-len 7 --json "$tmp/fixed.json"; then
  check fixed_counts "$tmp/fixed.json" \
    'requests == 24 and input_tokens == 24 * 9 and output_tokens == 24 * 7 and engine_generated == output_tokens and engine_prompt_computed <= input_tokens'
  check fixed_rates "$tmp/fixed.json" \
    'abs(requests_per_s * elapsed_s - requests) < 1e-3 * requests and abs(output_tokens_per_s * elapsed_s - output_tokens) < 1e-3 * output_tokens and abs(input_tokens_per_s * elapsed_s - input_tokens) < 1e-3 * input_tokens'
  check fixed_steps "$tmp/fixed.json" 'steps >= 7 and max_input == 9 and max_output == 7'
else
  ko fixed "bench failed"
fi

# ShareGPT-shaped, scaled to the fixture (256 positions), in a pool of 24 blocks for up to 8
# sequences of up to 128 tokens (8 blocks each): preemption under vLLM's admission rule
# (--headroom-steps 0); the engine's default KV headroom runs the same without any.
SG="--dataset sharegpt --mean-input 20 --mean-output 16 --max-input 64 --max-total 128 --max-num-seqs 8 --max-num-batched-tokens 48 --num-blocks 24 --num-prompts 60 --headroom-steps 0"
if bench $SG --seed 7 --json "$tmp/sg1.json" && grep -q "preemptions" "$tmp/log" &&
   cp "$tmp/log" "$tmp/sg1.log" && bench $SG --seed 7 --json "$tmp/sg2.json" &&
   bench $SG --seed 8 --json "$tmp/sg3.json"; then
  check sharegpt_caps "$tmp/sg1.json" 'max_input <= 64 and max_len <= 128 and max_output >= 4'
  check sharegpt_counts "$tmp/sg1.json" \
    'requests == 60 and engine_generated == output_tokens and output_tokens >= 4 * 60'
  check sharegpt_steps "$tmp/sg1.json" 'steps >= max_output and steps * 8 >= output_tokens'
  a=$(python3 -c "import json;r=json.load(open('$tmp/sg1.json'));print(r['input_tokens'],r['output_tokens'])")
  b=$(python3 -c "import json;r=json.load(open('$tmp/sg2.json'));print(r['input_tokens'],r['output_tokens'])")
  c=$(python3 -c "import json;r=json.load(open('$tmp/sg3.json'));print(r['input_tokens'],r['output_tokens'])")
  if [ "$a" = "$b" ] && [ "$a" != "$c" ]; then ok sharegpt_seeded; else ko sharegpt_seeded "seed 7: $a, again: $b, seed 8: $c"; fi
  # Tail: over 60 draws with sigma 1 the largest input is well above the mean.
  check sharegpt_tail "$tmp/sg1.json" 'max_input > 2 * input_tokens / requests'
  if grep -Eq ", [1-9][0-9]* preemptions" "$tmp/sg1.log"; then ok sharegpt_preempts; else ko sharegpt_preempts "$(tail -2 "$tmp/sg1.log")"; fi
  check sharegpt_recomputed "$tmp/sg1.json" 'preemptions > 0 and tokens_recomputed > 0 and engine_prompt_computed > input_tokens'
  if bench ${SG% --headroom-steps 0} --seed 7 --no-async-scheduling --json "$tmp/sg4.json"; then
    a=$(python3 -c "import json;r=json.load(open('$tmp/sg4.json'));print(r['output_tokens'],r['preemptions'],r['tokens_recomputed'],r['engine_prompt_computed']==r['input_tokens'])")
    b=$(python3 -c "import json;r=json.load(open('$tmp/sg1.json'));print(r['output_tokens'])")
    if [ "$a" = "$b 0 0 True" ]; then ok sharegpt_headroom_no_preemption; else ko sharegpt_headroom_no_preemption "default policy, in turn: $a (output, preemptions, recomputed, no prompt recomputed); vLLM's rule: output $b"; fi
    # The same under async scheduling, the default: its projection counts the step a
    # finishing sequence's blocks come back later (without that, this run preempted once).
    if bench ${SG% --headroom-steps 0} --seed 7 --json "$tmp/sg5.json"; then
      a=$(python3 -c "import json;r=json.load(open('$tmp/sg5.json'));print(r['output_tokens'],r['preemptions'],r['tokens_recomputed'],r['async_scheduling'])")
      if [ "$a" = "$b 0 0 True" ]; then ok sharegpt_headroom_async_no_preemption; else ko sharegpt_headroom_async_no_preemption "async: $a (output, preemptions, recomputed, async); vLLM's rule: output $b"; fi
    else
      ko sharegpt_headroom_async_no_preemption "bench failed"
    fi
  else
    ko sharegpt_headroom_no_preemption "bench failed"
  fi
  # `bench scheduler` draws the same requests from the same flags (tools/bench/bench_workload.c).
  if "$PAGODA" bench scheduler $SG --seed 7 >"$tmp/sim" 2>&1; then
    a=$(python3 -c "import json;r=json.load(open('$tmp/sg1.json'));print(r['input_tokens'],r['output_tokens'])")
    b=$(sed -nE 's/^workload: .* input ([0-9]+) tokens .* output ([0-9]+) .*/\1 \2/p' "$tmp/sim")
    if [ "$a" = "$b" ]; then ok scheduler_same_workload; else ko scheduler_same_workload "throughput: $a, scheduler: $b"; fi
  else
    ko scheduler_same_workload "bench scheduler failed: $(tail -3 "$tmp/sim")"
  fi
else
  ko sharegpt "bench failed"
fi

# Bad workload flags are refused, by both commands that take them, with a message naming
# the value.
bad=""
for args in "--dataset nope" "--num-prompts 0" "--num-prompts 12x" "--mean-input -3" \
            "--max-input 2" "--seed -1"; do
  for cmd in "throughput --model $MODEL --device cpu" scheduler; do
    # shellcheck disable=SC2086 # the words are arguments
    if "$PAGODA" bench $cmd $args >/dev/null 2>"$tmp/err" ||
       ! grep -qF -- "${args#* }" "$tmp/err"; then bad="$bad [$cmd $args]"; fi
  done
done
if [ -z "$bad" ]; then ok usage; else ko usage "accepted or not named:$bad"; fi

# The engine's flags beside the bench's own, as vLLM's bench takes them and `pagoda serve`
# parses them: --cuda-graph-sizes' words (spaces or commas) reach the engine and the next
# option still parses (the CPU engine takes the sizes and captures nothing); --max-model-len
# reaches it (a 9-token prompt is refused at 8); a server's flag, bad sizes and unknown
# flags are refused, each named.
if bench --num-prompts 4 --input-len 5 --output-len 3 --cuda-graph-sizes 1 2 4,8 \
     --json "$tmp/graphs.json"; then
  check engine_flags_graph_sizes "$tmp/graphs.json" 'cuda_graph_sizes == [1, 2, 4, 8] and requests == 4'
else
  ko engine_flags_graph_sizes "bench failed"
fi
if "$PAGODA" bench throughput --model "$MODEL" --device cpu --warmup 0 --num-prompts 2 \
     --input-len 9 --output-len 2 --max-model-len 8 >"$tmp/log" 2>&1; then
  ko engine_flags_max_model_len "a 9-token prompt ran at --max-model-len 8"
elif grep -q "max_model_len\|max-model-len" "$tmp/log"; then
  ok engine_flags_max_model_len
else
  ko engine_flags_max_model_len "$(tail -3 "$tmp/log")"
fi
bad=""
for args in "--cuda-graph-sizes 0" "--cuda-graph-sizes 2 70000" "--cuda-graph-sizes 4,x" \
            "--port 8000" "--no-such-flag" "--max-model-len lots"; do
  # shellcheck disable=SC2086 # the words are arguments
  if "$PAGODA" bench throughput --model "$MODEL" --device cpu $args >/dev/null 2>"$tmp/err"; then
    bad="$bad [$args accepted]"
  elif ! grep -qF -- "$(set -- $args; echo "$1")" "$tmp/err"; then
    bad="$bad [$args: $(head -c 160 "$tmp/err")]"
  fi
done
if [ -z "$bad" ]; then ok engine_flags_refused; else ko engine_flags_refused "$bad"; fi
finish
