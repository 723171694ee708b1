#!/usr/bin/env bash
# `pagoda bench throughput --profile-ops` on the CPU with the tiny Llama fixture: the profile
# pass sees and times every one of its steps, each in the bucket of its kind and size; the
# timed run's steps are all counted in the buckets too; every bucket's per-op table has the
# fixture's ops at its call counts a step and shares that add up with the gap between ops to
# the step; the whole run's forward time by kind of op weighs each bucket by the timed run's
# steps in it; --profile-prompts limits the pass; the text report has a table per bucket.
# Prints a Criterion-style synthesis line.
set -u
SUITE=bench_profile_ops
. "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/llama-f32
# check NAME JSON PYTHON-STATEMENTS (over the report r; an AssertionError's message is the why)
check() {
  local out
  if out=$(python3 -c "
import json, sys
r = json.load(open('$2'))
p = r['op_profile']
B = p['buckets']
$3
" 2>&1); then ok "$1"; else ko "$1" "$out"; fi
}
bench() {
  "$PAGODA" bench throughput --model "$MODEL" --device cpu --warmup 2 --profile-ops "$@" \
    >"$tmp/log" 2>&1 || { cat "$tmp/log"; return 1; }
}

# 40 requests of 9 in / 6 out, at most 16 sequences and 64 tokens a step: decode steps of up
# to 16 sequences, prompt steps of up to 64 tokens (several buckets of each kind).
W="--num-prompts 40 --input-len 9 --output-len 6 --max-num-seqs 16 --max-num-batched-tokens 64"
if bench $W --json "$tmp/all.json"; then
  check every_pass_step_profiled "$tmp/all.json" "
assert p['requests'] == 40, p['requests']
assert sum(b['profiled_steps'] for b in B) == p['engine_steps'] > 0, (p['engine_steps'], B)
for b in B:
    assert b['profiled_steps'] == 0 or b['profile']['steps'] == b['profiled_steps'], b
    assert b['profile'] is None or b['profile']['dropped'] == 0, b
"
  check every_timed_step_counted "$tmp/all.json" "
assert sum(b['timed_steps'] for b in B) == r['steps'], (r['steps'], B)
assert sum(b['timed_graph_steps'] for b in B) == 0, 'no CUDA graphs on the CPU'
assert abs(sum(b['timed_share'] for b in B) - 100) < 1e-6, B
"
  check buckets_by_kind_and_size "$tmp/all.json" "
kinds = [b['kind'] for b in B]
assert kinds == sorted(kinds, key=['decode', 'prompt'].index), kinds
assert 'decode' in kinds and 'prompt' in kinds, kinds
for b in B:
    assert b['max'] & (b['max'] - 1) == 0 and b['min'] == (1 if b['max'] == 1 else b['max'] // 2 + 1), b
    for run in ('timed', 'profiled'):
        n, mean = b[run + '_steps'], b[run + '_mean_size']
        assert n == 0 or b['min'] <= mean <= b['max'], (run, b)
    limit = 16 if b['kind'] == 'decode' else 64
    assert b['min'] <= limit, b
"
  check tables_have_the_fixture_ops "$tmp/all.json" "
for b in B:
    if b['profile'] is None:
        continue
    calls = {}
    for o in b['profile']['ops']:
        calls[o['op']] = calls.get(o['op'], 0) + o['calls']
    want = {'rope+attention': 2, 'qkv': 2, 'gate_up+act': 2, 'linear': 4, 'add_rmsnorm': 4,
            'rmsnorm': 1, 'embed': 1, 'lm_head': 1}
    assert calls == want, (b['kind'], b['max'], calls)
"
  check shares_add_up "$tmp/all.json" "
for b in B:
    t = b['profile']
    if t is None:
        continue
    ops_us = sum(o['us'] for o in t['ops'])
    step_us = 1e3 * t['step_ms']
    assert 0 < ops_us <= step_us * (1 + 1e-9), (ops_us, step_us)
    shares = sum(o['share'] for o in t['ops'])
    assert abs(shares - 100 * ops_us / step_us) < 1e-6, (shares, ops_us, step_us)
    assert abs(shares + t['between_ops_share'] - 100) < 1e-6, (shares, t['between_ops_share'])
    # the ops are the step: the gap between them is bookkeeping
    assert shares > 80, (b['kind'], b['max'], shares)
    assert abs(b['profiled_step_ms'] - t['step_ms']) < 1e-9, b
    # a size the pass batched into but the timed run never did (arrival order differs) has
    # no timed step to compare with
    assert (b['eager_over_timed'] > 0) == (b['timed_steps'] > 0), b
"
  check run_by_kind "$tmp/all.json" "
prof = [b for b in B if b['profile'] and b['profile']['steps']]
k = p['run_s_by_kind']
assert sorted(k) == sorted(['gemm', 'attention', 'norm', 'elementwise', 'other', 'between']), k
assert p['run_steps_covered'] == sum(b['timed_steps'] for b in prof) > 0, p
want = sum(b['timed_steps'] * b['profile']['step_ms'] for b in prof) / 1e3
assert abs(sum(k.values()) - want) < 1e-9 + 1e-9 * want, (k, want)
att = sum(b['timed_steps'] * sum(o['us'] for o in b['profile']['ops'] if o['kind'] == 'attention') for b in prof) / 1e6
assert abs(k['attention'] - att) < 1e-9 + 1e-9 * att and att > 0, (k, att)
"
  n=$(grep -c "^per-op time, " "$tmp/log")
  nb=$(python3 -c "import json;print(sum(1 for b in json.load(open('$tmp/all.json'))['op_profile']['buckets'] if b['profile']))")
  if grep -q "per-op profile of the workload's steps" "$tmp/log" && [ "$n" = "$nb" ] &&
     grep -q "^the forward pass by kind of op" "$tmp/log" && grep -q "^run  *a step " "$tmp/log" &&
     grep -q "^decode-only steps of " "$tmp/log" && grep -q "^prompt-token steps of " "$tmp/log" &&
     grep -Eq "^profile pass: 40 requests in .* steps \(([0-9]+) seen by the step hook, \1 of them" "$tmp/log"; then
    ok text_report
  else
    ko text_report "$n tables for $nb buckets: $(grep -E "^(profile pass|per-op|decode-only|prompt-token)" "$tmp/log")"
  fi
else
  ko profile_ops "bench failed"
fi

# --profile-prompts 5: the pass runs the first 5 requests (decode steps of at most 5).
if bench $W --profile-prompts 5 --json "$tmp/five.json"; then
  check profile_prompts "$tmp/five.json" "
assert p['requests'] == 5, p['requests']
for b in B:
    if b['kind'] == 'decode' and b['profiled_steps']:
        assert b['profiled_mean_size'] <= 5, b
assert sum(b['profiled_steps'] for b in B) == p['engine_steps'], B
assert r['requests'] == 40 and r['output_tokens'] == 40 * 6, 'the timed run is the whole workload'
"
else
  ko profile_prompts "bench failed"
fi

# Without --profile-ops the report has no profile.
if "$PAGODA" bench throughput --model "$MODEL" --device cpu --warmup 0 --num-prompts 4 \
     --input-len 5 --output-len 3 --json "$tmp/none.json" >"$tmp/log" 2>&1 &&
   python3 -c "import json,sys;sys.exit('op_profile' in json.load(open('$tmp/none.json')))" &&
   ! grep -q "per-op" "$tmp/log"; then
  ok off_by_default
else
  ko off_by_default "$(tail -3 "$tmp/log")"
fi

if "$PAGODA" bench throughput --model "$MODEL" --profile-ops --profile-prompts 0 >/dev/null 2>&1; then
  ko usage "--profile-prompts 0 accepted"
else
  ok usage
fi
finish
