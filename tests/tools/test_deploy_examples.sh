#!/usr/bin/env bash
# Deployment INI files from the command line: every examples/deploy/**/*.ini passes
# `pagoda config --check`; a file with problems fails it (exit 1) with each problem's
# file:line; `pagoda config --print --config F` shows which line set each value and that a
# flag overrides the file; `pagoda serve --config F` reads the file and starts nothing when
# it is invalid.
SUITE=deploy; . "$(dirname "$0")/../lib/harness.sh"
B=$BUILDDIR S=$SRCDIR P=$PAGODA
M="$S/tests/fixtures/models/tiny-chat"

n=0
for f in $(find "$S/examples/deploy" -name '*.ini' | sort); do
  n=$((n + 1))
  name=$(echo "${f#"$S"/examples/deploy/}" | sed 's|/|_|g; s|\.ini$||')
  if PAGODA_API_KEY=example "$P" config --check "$f" >"$tmp/out" 2>&1 \
     && grep -q ': OK$' "$tmp/out" && ! grep -q warning "$tmp/out"; then
    ok "check_$name"
  else ko "check_$name" "$(cat "$tmp/out")"; fi
done
# A CPU box, one GPU with an 8B model, a quantized model, a REPL-only setup, the container's.
if [ $n -ge 5 ]; then ok examples_present; else ko examples_present "only $n in examples/deploy"; fi
if grep -q '^quantization = gptq$' "$S/examples/deploy/gpu-8b-gptq.ini" \
   && grep -q '^\[frontend.repl\]$' "$S/examples/deploy/repl.ini" \
   && ! grep -q '^\[frontend.openai\]$' "$S/examples/deploy/repl.ini"; then
  ok examples_quantized_and_repl_only
else ko examples_quantized_and_repl_only "gpu-8b-gptq.ini or repl.ini lost its point"; fi

printf '[model]\nmodel = %s\nquantization = gguf\n' "$M" >"$tmp/quant.ini"
"$P" config --check "$tmp/quant.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "quant.ini:3: quantization: 'gguf' is not valid: expected one of auto|gptq|awq|fp8" "$tmp/out"; then
  ok check_quantization_values
else ko check_quantization_values "rc $rc: $(cat "$tmp/out")"; fi

# A method the checkpoint does not have is refused at load, naming it (the fixture is dense).
printf '[model]\nmodel = %s\nquantization = gptq\n[plugins]\nfrontend = none\n' "$M" >"$tmp/gptq.ini"
"$P" serve --config "$tmp/gptq.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -ne 0 ] && grep -qi 'gptq' "$tmp/out"; then
  ok serve_refuses_missing_quantization
else ko serve_refuses_missing_quantization "rc $rc: $(cat "$tmp/out")"; fi

# A chat with a server needs no model of its own; a [log] log_format outside its list fails.
printf '[frontend.repl]\nurl = http://127.0.0.1:8000/v1\n[log]\nlog_format = json\n' >"$tmp/remote.ini"
printf '[log]\nlog_format = yaml\n' >"$tmp/logfmt.ini"
"$P" config --check "$tmp/remote.ini" >"$tmp/out" 2>&1; rc=$?
"$P" config --check "$tmp/logfmt.ini" >"$tmp/out2" 2>&1; rc2=$?
if [ $rc -eq 0 ] && [ $rc2 -eq 1 ] && grep -q "logfmt.ini:2: log_format: 'yaml' is not valid: expected one of text|json" "$tmp/out2"; then
  ok check_remote_chat_and_log_format
else ko check_remote_chat_and_log_format "rc $rc $rc2: $(cat "$tmp/out" "$tmp/out2")"; fi

# The secret comes from the environment: without it the example is refused, naming it.
env -u PAGODA_API_KEY "$P" config --check "$S/examples/deploy/gpu-8b.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q 'gpu-8b.ini:[0-9]*: api_key: the environment variable PAGODA_API_KEY (${PAGODA_API_KEY}) is not set' "$tmp/out"; then
  ok check_unset_env
else ko check_unset_env "rc $rc: $(cat "$tmp/out")"; fi

printf '[model]\nmodel = %s\nmax_model_len = lots\n[engine]\nport = 1\n[log]\nlog_levle = info\n' "$M" >"$tmp/bad.ini"
"$P" config --check "$tmp/bad.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "bad.ini:3: max_model_len: 'lots' is not valid" "$tmp/out" \
   && grep -q 'bad.ini:5: port belongs in \[frontend.openai\], not \[engine\]' "$tmp/out" \
   && grep -q 'bad.ini:7: unknown key log_levle in \[log\] (did you mean log_level?)' "$tmp/out"; then
  ok check_lists_every_problem
else ko check_lists_every_problem "rc $rc: $(cat "$tmp/out")"; fi

printf '[engine]\nseed = 1\n' >"$tmp/nomodel.ini"
"$P" config --check "$tmp/nomodel.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q 'nomodel.ini: no model: \[model\] needs model = ' "$tmp/out"; then
  ok check_needs_a_model
else ko check_needs_a_model "rc $rc: $(cat "$tmp/out")"; fi

"$P" serve --config "$tmp/bad.ini" >"$tmp/out" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "bad.ini:3: max_model_len" "$tmp/out" && ! grep -q 'device:' "$tmp/out"; then
  ok serve_refuses_invalid_file
else ko serve_refuses_invalid_file "rc $rc: $(cat "$tmp/out")"; fi

"$P" config --print --config "$S/examples/deploy/cpu.ini" --port 9001 >"$tmp/print" 2>&1
if grep -q '^port = 9001    ; --port$' "$tmp/print" \
   && grep -q '^max_num_seqs = 8    ; .*examples/deploy/cpu.ini:[0-9]*$' "$tmp/print" \
   && grep -q '^block_size = 16    ; default$' "$tmp/print"; then
  ok print_flag_over_file_over_default
else ko print_flag_over_file_over_default "$(cat "$tmp/print")"; fi

# serve reads the file: its device and log level apply (an unknown frontend then stops serve
# before it loads anything).
printf '[model]\nmodel = %s\n[engine]\ndevice = cpu\n[plugins]\nfrontend = none\n[frontend.openai]\nport = 0\n[log]\nlog_level = info\n' "$M" >"$tmp/good.ini"
"$P" serve --config "$tmp/good.ini" >"$tmp/out" 2>&1
if grep -q 'device: cpu (--device cpu)' "$tmp/out" && grep -q "no frontend plugin named 'none'" "$tmp/out"; then
  ok serve_reads_file
else ko serve_reads_file "$(cat "$tmp/out")"; fi

finish
