#!/usr/bin/env bash
# `pagoda bench grammar` over the tiny-chat fixture's tokenizer: the per-step mask times of
# the built-in guides (walk and engine); with --batch, generations of guides of their own
# at once, a line for each --threads count with its ratio to the engine thread alone; the
# same run twice meets the same states (seeded); bad arguments are refused.
set -u
SUITE=bench_grammar
. "$(dirname "$0")/../lib/harness.sh"
TOK="$SRCDIR/tests/fixtures/models/tiny-chat"

if "$PAGODA" bench grammar --tokenizer "$TOK" --steps 30 >"$tmp/one" 2>"$tmp/err"; then
  if [ "$(grep -c 'compiled in' "$tmp/one")" = 3 ] && [ "$(grep -c '^    walk ' "$tmp/one")" = 3 ] &&
     [ "$(grep -c '^    engine ' "$tmp/one")" = 3 ] && grep -q '^  json_schema: .* 30 steps' "$tmp/one"; then
    ok per_step_times
  else
    ko per_step_times "$(cat "$tmp/one")"
  fi
else
  ko per_step_times "bench failed: $(cat "$tmp/err")"
fi

if "$PAGODA" bench grammar --tokenizer "$TOK" --kind regex --guide '[a-z ]{10,40}\.' \
     --batch 6 --threads 0,2 --steps 12 >"$tmp/b1" 2>"$tmp/err"; then
  if grep -q '^  regex, 6 generations at once, each its own guide, 12 steps' "$tmp/b1" &&
     grep -qE '^     0 helpers +[0-9.]+ ms$' "$tmp/b1" &&
     grep -qE '^     2 helpers +[0-9.]+ ms +[0-9.]+x the engine thread alone$' "$tmp/b1"; then
    ok batch_lines
  else
    ko batch_lines "$(cat "$tmp/b1")"
  fi
  "$PAGODA" bench grammar --tokenizer "$TOK" --kind regex --guide '[a-z ]{10,40}\.' \
    --batch 6 --threads 0,2 --steps 12 >"$tmp/b2" 2>&1
  "$PAGODA" bench grammar --tokenizer "$TOK" --steps 30 >"$tmp/two" 2>&1
  states() { grep -o '[0-9]* distinct states' "$1"; }
  if [ "$(states "$tmp/one")" = "$(states "$tmp/two")" ] && [ -n "$(states "$tmp/one")" ] &&
     [ "$(grep -c helpers "$tmp/b2")" = 2 ]; then
    ok seeded
  else
    ko seeded "$(cat "$tmp/one" "$tmp/two" "$tmp/b2")"
  fi
else
  ko batch_lines "bench failed: $(cat "$tmp/err")"
fi

if "$PAGODA" bench grammar --tokenizer "$TOK" --batch -1 >/dev/null 2>&1 ||
   "$PAGODA" bench grammar --tokenizer "$TOK" --batch 2 --threads x >/dev/null 2>&1 ||
   "$PAGODA" bench grammar --tokenizer "$TOK" --threads 65 >/dev/null 2>&1 ||
   "$PAGODA" bench grammar --steps 5 >/dev/null 2>&1; then
  ko usage "a bad argument was accepted"
else
  ok usage
fi
finish
