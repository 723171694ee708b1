#!/usr/bin/env bash
# `pagoda bench spec` on the CPU with the tiny Llama fixture: both prompt sets run to their
# output length with and without speculation, the spec_decode counters it reports are
# consistent (accepted <= drafted, a verify run proposes at most 4), the repetitive set gets
# proposals, and a bad --speculative-config is refused. Prints a Criterion-style synthesis.
set -u
SUITE=bench_spec
. "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/llama-f32
export OPENBLAS_NUM_THREADS=1
if "$PAGODA" bench spec --model "$MODEL" --device cpu --num-prompts 3 --output-len 40 \
     --json "$tmp/r.json" >"$tmp/log" 2>&1; then
  if out=$(python3 - "$tmp/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
for name, s in r["sets"].items():
    if not (s["tokens_off"] == s["tokens_on"] == 3 * 40):
        bad.append(name + ": token counts")
    if not (0 <= s["num_accepted_tokens"] <= s["num_draft_tokens"] <= 4 * s["num_drafts"]):
        bad.append(name + ": counters")
if r["sets"]["repetitive"]["num_drafts"] == 0:
    bad.append("repetitive: no proposals")
print("; ".join(bad))
PY
  ) && [ -z "$out" ]; then ok report "$out"; else ko report "$out $(cat "$tmp/r.json")"; fi
  if grep -q "^repetitive  on" "$tmp/log" && grep -q "speed-up" "$tmp/log"; then ok table;
  else ko table "$(cat "$tmp/log")"; fi
else
  ko run "$(tail -5 "$tmp/log")"
fi
if "$PAGODA" bench spec --model "$MODEL" --device cpu --num-prompts 1 --output-len 4 \
     --speculative-config '{"method": "ngram"}' >"$tmp/bad" 2>&1; then
  ko refuses_bad_config "accepted"
elif grep -q "num_speculative_tokens" "$tmp/bad"; then ok refuses_bad_config;
else ko refuses_bad_config "$(cat "$tmp/bad")"; fi
finish
