#!/bin/sh
# Deployment INI files from the command line: every examples/deploy/*.ini passes
# `pagoda config --check`; a file with problems fails it (exit 1) with each problem's
# file:line; `pagoda config --print --config F` shows which line set each value and that a
# flag overrides the file; `pagoda serve --config F` reads the file and starts nothing when
# it is invalid.
B=${PGD_BUILDDIR:-.}
S=${PGD_SRCDIR:-..}
P="$B/tools/pagoda"
M="$S/tests/fixtures/models/tiny-chat"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "[PASS] deploy::$1"; }
ko() { fail=$((fail + 1)); echo "[FAIL] deploy::$1: $2"; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

n=0
for f in "$S"/examples/deploy/*.ini; do
  n=$((n + 1))
  if PAGODA_API_KEY=example "$P" config --check "$f" >"$tmp/out" 2>&1 \
     && grep -q ': OK$' "$tmp/out" && ! grep -q warning "$tmp/out"; then
    ok "check_$(basename "$f" .ini)"
  else ko "check_$(basename "$f" .ini)" "$(cat "$tmp/out")"; fi
done
if [ $n -ge 2 ]; then ok examples_present; else ko examples_present "only $n in examples/deploy"; fi

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

echo "[====] Synthesis: Tested: $((pass + fail)) | Passing: $pass | Failing: $fail | Crashing: 0"
[ $fail -eq 0 ]
