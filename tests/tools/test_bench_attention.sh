#!/usr/bin/env bash
# `pagoda bench attention --mixed`'s and `--prompts`' cases checked before any GPU is
# opened: each bad case (not BxL+P[@C] / NxP[@C], or past the bench's pool) refused with exit
# status 2 and a message that names it, in every build, and the two options together
# refused; a good list gets past them to the GPU (which this machine may lack: then exit
# status 1 and a message about the device or the build, never the list's).
set -u
SUITE=bench_attention
. "$(dirname "$0")/../lib/harness.sh"

# refuses NAME OPTION FORM SPEC...: each SPEC given to OPTION exits 2, its message saying the
# option takes FORM (a grep pattern) and naming SPEC's last item.
refuses() {
  local name=$1 opt=$2 form=$3 spec rc; shift 3
  for spec in "$@"; do
    "$PAGODA" bench attention "$opt" "$spec" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" != 2 ] || ! grep -q -- "$opt takes $form.*not '${spec##*,}'" "$tmp/err"; then
      ko "$name" "'$spec': exit $rc, $(cat "$tmp/err")"
      return
    fi
  done
  ok "$name"
}

refuses refuses_bad_cases --mixed 'BxL+P\[@C\]' "5x300+40@a" "5x300+40z" "5x300+" "x300+40" \
  "0x300+40" "1024x300+40" "5x5000+40" "5x300+1" "5x300+3000@2000" "1000x300+7500" \
  "5x300+40,2x3"

"$PAGODA" bench attention --mixed 100x300+1000,32x4000+1000@2000 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 2 ] || grep -q -- "--mixed takes" "$tmp/err"; then
  ko takes_good_cases "exit $rc: $(cat "$tmp/err")"
elif [ "$rc" = 0 ] && grep -q "^BxL+P@C" "$tmp/out" && [ "$(grep -c '^100x300+1000@0 \|^32x4000+1000@2000 ' "$tmp/out")" = 2 ]; then
  ok takes_good_cases                # a GPU was there: the table's two lines
elif [ "$rc" = 1 ] && grep -qiE "cuda|device|gpu" "$tmp/err"; then
  ok takes_good_cases                # no GPU (or no CUDA build): stopped there, not at the list
else
  ko takes_good_cases "exit $rc: $(cat "$tmp/out" "$tmp/err")"
fi
refuses refuses_bad_prompt_steps --prompts 'NxP\[@C\]' "4x100@a" "4x100z" "4x" "x100" "0x100" \
  "1024x10" "4x100@4000" "4x0" "128x129" "4x100,2x"

"$PAGODA" bench attention --prompts 4x100 --mixed 100x300+1000 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 2 ] && grep -q -- "--mixed and --prompts are two benches" "$tmp/err"; then
  ok refuses_both_benches
else
  ko refuses_both_benches "exit $rc: $(cat "$tmp/err")"
fi

"$PAGODA" bench attention --prompts 128x128,4x1000@3000 --path auto >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 2 ] || grep -q -- "--prompts takes" "$tmp/err"; then
  ko takes_good_prompt_steps "exit $rc: $(cat "$tmp/err")"
elif [ "$rc" = 0 ] && [ "$(grep -c '^128x128@0 \|^4x1000@3000 ' "$tmp/out")" = 2 ] &&
     ! grep -q "^prefill \|^decode " "$tmp/out"; then
  ok takes_good_prompt_steps         # a GPU was there: the two cases' lines, nothing else
elif [ "$rc" = 1 ] && grep -qiE "cuda|device|gpu" "$tmp/err"; then
  ok takes_good_prompt_steps         # no GPU (or no CUDA build): stopped there, not at the list
else
  ko takes_good_prompt_steps "exit $rc: $(cat "$tmp/out" "$tmp/err")"
fi
finish
