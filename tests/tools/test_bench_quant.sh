#!/usr/bin/env bash
# `pagoda bench quant --fold-plans` (the folded W4 GEMM's every plan beside its cost model):
# a format the fold does not take refused with exit status 2 and a message naming it, before
# any GPU is opened, in every build; the default gets past that to the GPU (which this machine
# may lack: then exit status 1 and a message about the device or the build), where it prints
# two rows (times, the model's costs) a shape, row count and kernel.
set -u
SUITE=bench_quant
. "$(dirname "$0")/../lib/harness.sh"

bad=""
for f in w4g32 w4g128-act w4ch w8g128 fp8; do
  "$PAGODA" bench quant --fold-plans --format "$f" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" != 2 ] || ! grep -q -- "--fold-plans takes a 4-bit format.*not $f\$" "$tmp/err"; then
    bad="$bad $f (exit $rc: $(cat "$tmp/err"))"
  fi
done
if [ -z "$bad" ]; then
  ok refuses_formats_the_fold_does_not_take
else
  ko refuses_formats_the_fold_does_not_take "$bad"
fi

"$PAGODA" bench quant --fold-plans --format nope >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 2 ] && grep -q "no format 'nope'" "$tmp/err"; then
  ok refuses_an_unknown_format
else
  ko refuses_an_unknown_format "exit $rc: $(cat "$tmp/err")"
fi

"$PAGODA" bench quant --help >"$tmp/out" 2>&1
rc=$?
if [ "$rc" = 0 ] &&
   grep -q -- "--fold-plans: the folded W4 GEMM's every token tile and split" "$tmp/out"; then
  ok help_names_fold_plans
else
  ko help_names_fold_plans "exit $rc: $(cat "$tmp/out")"
fi

"$PAGODA" bench quant --fold-plans --batch 64 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" = 0 ] && grep -q "^== fold plans, w4g128" "$tmp/out" &&
   [ "$(grep -cE '^(q / o|qkv|gate_up|down) +64 (plain|ws) +us ' "$tmp/out")" = 8 ] &&
   [ "$(grep -cE '^ +model ' "$tmp/out")" = 8 ]; then
  ok runs_every_plan                 # a GPU was there: 4 shapes x 2 kernels, two rows each
elif [ "$rc" = 1 ] && grep -qiE "cuda|device|gpu|fold" "$tmp/err"; then
  ok runs_every_plan                 # no GPU (or no sm_90a): stopped there, not at the flags
else
  ko runs_every_plan "exit $rc: $(cat "$tmp/out" "$tmp/err")"
fi
finish
