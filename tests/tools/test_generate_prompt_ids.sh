#!/usr/bin/env bash
# `pagoda generate` given token ids on a model directory whose tokenizer.json cannot be
# loaded (a copy of the tiny-chat fixture, the tokenizer cut short): --prompt-ids and a
# prompts file of prompt_ids still generate, the same tokens as with the good tokenizer,
# and say why the output is ids; a text prompt is still refused, naming the file. Also
# --batch-invariant (below). Prints a Criterion-style synthesis line.
set -u
SUITE=generate_prompt_ids
. "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/tiny-chat
gen() { PAGODA_LOG=warn "$PAGODA" generate --device cpu --num-blocks 64 "$@"; }

broken=$tmp/broken
mkdir "$broken"
cp "$MODEL"/* "$broken"/
head -c 200 "$MODEL/tokenizer.json" >"$broken/tokenizer.json"   # cut short: invalid JSON

# The reference: the same ids through the model with its good tokenizer, printed as ids.
want=$(gen --model "$MODEL" --prompt-ids 5,6,7 --max-tokens 6 --ignore-eos --ids 2>"$tmp/ref.err")
if [[ "$want" =~ ^\[[0-9]+(,\ [0-9]+){5}\]$ ]]; then ok reference; else ko reference "$want $(cat "$tmp/ref.err")"; fi

got=$(gen --model "$broken" --prompt-ids 5,6,7 --max-tokens 6 --ignore-eos 2>"$tmp/ids.err")
rc=$?
if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then ok prompt_ids_without_tokenizer
else ko prompt_ids_without_tokenizer "rc $rc, got '$got', want '$want': $(cat "$tmp/ids.err")"; fi
if grep -q "$broken/tokenizer.json: .*serving token ids only" "$tmp/ids.err"; then ok says_why
else ko says_why "$(cat "$tmp/ids.err")"; fi

printf '{"prompt_ids": [5, 6, 7], "max_tokens": 6, "ignore_eos": true}\n' >"$tmp/prompts.jsonl"
got=$(gen --model "$broken" --prompts-file "$tmp/prompts.jsonl" 2>"$tmp/file.err")
rc=$?
ids=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["outputs"][0]["token_ids"])' "$got" 2>&1)
if [ $rc -eq 0 ] && [ "$ids" = "$want" ]; then ok prompts_file_ids_without_tokenizer
else ko prompts_file_ids_without_tokenizer "rc $rc, got '$got' ($ids): $(cat "$tmp/file.err")"; fi

# Text needs the tokenizer: refused, naming the file.
out=$(gen --model "$broken" --prompt "hello" --max-tokens 2 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "$broken/tokenizer.json" <<<"$out"; then ok text_prompt_refused
else ko text_prompt_refused "rc $rc: $out"; fi
# So is a prompts file with one text prompt among ids.
printf '{"prompt": "hello", "max_tokens": 2}\n' >>"$tmp/prompts.jsonl"
out=$(gen --model "$broken" --prompts-file "$tmp/prompts.jsonl" 2>&1)
rc=$?
if [ $rc -ne 0 ] && grep -q "$broken/tokenizer.json" <<<"$out"; then ok mixed_file_refused
else ko mixed_file_refused "rc $rc: $out"; fi

# --batch-invariant reaches the engine (its log line, absent without the flag), and twelve
# seeded requests at temperature 1 run together give each the token ids it gets alone (the
# Llama fixture, float32 on the CPU; test_http_serve.py compares logprobs bit for bit).
LLAMA=$SRCDIR/tests/fixtures/models/llama-f32
python3 - "$tmp/many.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(12):
        f.write(json.dumps({"prompt_ids": [3 + (i * 37 + k * 11) % 250 for k in range(2 + i)],
                            "max_tokens": 20, "temperature": 1.0, "seed": 100 + i,
                            "ignore_eos": True}) + "\n")
PY
out=$(PAGODA_LOG=info "$PAGODA" generate --device cpu --num-blocks 64 --model "$LLAMA" \
      --prompt-ids 5,6,7 --max-tokens 2 --batch-invariant 2>&1 >/dev/null)
off=$(PAGODA_LOG=info "$PAGODA" generate --device cpu --num-blocks 64 --model "$LLAMA" \
      --prompt-ids 5,6,7 --max-tokens 2 2>&1 >/dev/null)
if grep -q "batch invariant: on" <<<"$out" && ! grep -q "batch invariant" <<<"$off"; then
  ok batch_invariant_flag_reaches_the_engine
else ko batch_invariant_flag_reaches_the_engine "with: $out
without: $off"; fi
if together=$(gen --model "$LLAMA" --prompts-file "$tmp/many.jsonl" --batch-invariant \
              2>"$tmp/bi.err"); then
  alone=""
  while IFS= read -r line; do
    printf '%s\n' "$line" >"$tmp/one.jsonl"
    alone+=$(gen --model "$LLAMA" --prompts-file "$tmp/one.jsonl" --batch-invariant 2>>"$tmp/bi.err")$'\n'
  done <"$tmp/many.jsonl"
  ids() { python3 -c 'import json, sys
for l in sys.stdin:
    if l.strip(): print(json.loads(l)["outputs"][0]["token_ids"])'; }
  a=$(ids <<<"$together"); b=$(ids <<<"$alone")
  if [ -n "$a" ] && [ "$(wc -l <<<"$a")" -eq 12 ] && [ "$a" = "$b" ]; then ok batch_invariant_together_equals_alone
  else ko batch_invariant_together_equals_alone "together:
$a
alone:
$b
$(tail -5 "$tmp/bi.err")"; fi
else
  ko batch_invariant_together_equals_alone "generate failed: $(tail -5 "$tmp/bi.err")"
fi

finish
