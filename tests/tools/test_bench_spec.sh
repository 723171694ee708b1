#!/usr/bin/env bash
# `pagoda bench spec` on the CPU with the tiny Llama fixture: both prompt sets run to their
# output length with and without speculation, the spec_decode counters it reports are
# consistent (accepted <= drafted, a verify run proposes at most 4), the repetitive set gets
# proposals, and a bad --speculative-config is refused; text prompt sets (--prompts) through
# tiny-chat's chat template run too, and a malformed prompts file is refused naming the key.
# Prints a Criterion-style synthesis.
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
# --prompts: text sets through the chat template of tiny-chat; requests may stop at EOS, and
# greedy output is the same with and without speculation, so both runs make as many tokens.
CHAT=$SRCDIR/tests/fixtures/models/tiny-chat
if "$PAGODA" bench spec --model "$CHAT" --device cpu --prompts "$SRCDIR/tools/bench/spec_prompts.json" \
     --output-len 12 --json "$tmp/t.json" >"$tmp/tlog" 2>&1; then
  if out=$(python3 - "$tmp/t.json" "$SRCDIR/tools/bench/spec_prompts.json" <<'PY'
import json, sys
r, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
bad = []
for name, key in (("repetitive", "repetitive"), ("free_form", "free-form")):
    s, n = r["sets"][name], len(p[key])
    if not (s["tokens_off"] == s["tokens_on"] and n <= s["tokens_on"] <= 12 * n):
        bad.append(name + ": token counts")
    if not (0 <= s["num_accepted_tokens"] <= s["num_draft_tokens"] <= 4 * s["num_drafts"]):
        bad.append(name + ": counters")
    if not all(s[k + m] > 0 for k in ("decode_ms_per_token_", "decode_cpu_ms_per_token_")
               for m in ("off", "on")):
        bad.append(name + ": decode times")
print("; ".join(bad))
PY
  ) && [ -z "$out" ] && grep -q "8 repetitive, 8 free-form, chat template" "$tmp/tlog"; then
    ok text_prompts
  else
    ko text_prompts "$out $(cat "$tmp/tlog")"
  fi
else
  ko text_prompts "$(tail -5 "$tmp/tlog")"
fi
printf '{"repetitive": ["a"], "free-form": "b"}' >"$tmp/bad.json"
if "$PAGODA" bench spec --model "$CHAT" --device cpu --prompts "$tmp/bad.json" >"$tmp/badp" 2>&1; then
  ko refuses_bad_prompts "accepted"
elif grep -q "bad.json: \"free-form\" must be a list" "$tmp/badp"; then ok refuses_bad_prompts;
else ko refuses_bad_prompts "$(cat "$tmp/badp")"; fi
if "$PAGODA" bench spec --model "$MODEL" --device cpu --num-prompts 1 --output-len 4 \
     --speculative-config '{"method": "ngram"}' >"$tmp/bad" 2>&1; then
  ko refuses_bad_config "accepted"
elif grep -q "num_speculative_tokens" "$tmp/bad"; then ok refuses_bad_config;
else ko refuses_bad_config "$(cat "$tmp/bad")"; fi
finish
