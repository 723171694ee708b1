#!/usr/bin/env bash
# `pagoda bench attention --mixed`'s cases checked before any GPU is opened: each bad case
# (not BxL+P[@C], or past the bench's pool) refused with exit status 2 and a message that
# names it, in every build; a good list gets past them to the GPU (which this machine may
# lack: then exit status 1 and a message about the device or the build, never the list's).
set -u
SUITE=bench_attention
. "$(dirname "$0")/../lib/harness.sh"

bad_ok=1
for spec in "5x300+40@a" "5x300+40z" "5x300+" "x300+40" "0x300+40" "1024x300+40" \
            "5x5000+40" "5x300+1" "5x300+3000@2000" "1000x300+7500" "5x300+40,2x3"; do
  "$PAGODA" bench attention --mixed "$spec" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  name=${spec##*,}
  if [ "$rc" != 2 ] || ! grep -q -- "--mixed takes BxL+P\[@C\].*not '$name'" "$tmp/err"; then
    bad_ok=0
    ko refuses_bad_cases "'$spec': exit $rc, $(cat "$tmp/err")"
    break
  fi
done
[ "$bad_ok" = 1 ] && ok refuses_bad_cases

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
finish
