#!/usr/bin/env bash
# `pagoda generate` given token ids on a model directory whose tokenizer.json cannot be
# loaded (a copy of the tiny-chat fixture, the tokenizer cut short): --prompt-ids and a
# prompts file of prompt_ids still generate, the same tokens as with the good tokenizer,
# and say why the output is ids; a text prompt is still refused, naming the file. Prints a
# Criterion-style synthesis line.
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

finish
