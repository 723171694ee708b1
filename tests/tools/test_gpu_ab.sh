#!/usr/bin/env bash
# scripts/gpu_ab.sh and scripts/ncu_ab.py on the CPU (the device machine runs them on the GPU):
# --pack-old makes a stripped, xz-packed copy of the build's libpagoda.so.0; the A/B run with
# tiny-chat's config runs `pagoda bench latency` under the old and the new library in turn
# and prints both; a broken old library fails the old runs and the script's status (so the
# old runs do load it); OLD_ENV / NEW_ENV run one library under two settings; BENCH_ATTENTION
# adds `bench attention` to each turn; ncu_ab.py groups two CSVs' launches by kernel and grid with old / new,
# and stops where the two launch sequences differ. Prints a Criterion-style synthesis.
set -u
SUITE=gpu_ab
. "$(dirname "$0")/../lib/harness.sh"
AB=$SRCDIR/scripts/gpu_ab.sh
CONFIG=$SRCDIR/tests/fixtures/models/tiny-chat/config.json
export OPENBLAS_NUM_THREADS=1

if "$AB" --pack-old "$BUILDDIR" "$tmp/old.xz" >"$tmp/pack.log" 2>&1 &&
   xz -dc "$tmp/old.xz" > "$tmp/old.so" && readelf -h "$tmp/old.so" | grep -q "Type: *DYN" &&
   readelf -d "$tmp/old.so" | grep -q "SONAME.*libpagoda.so.0"; then
  ok pack_old
else
  ko pack_old "$(cat "$tmp/pack.log")"
fi

if B=$BUILDDIR OLD=$tmp/old.xz OUT=$tmp/ab ROUNDS=1 "$AB" "$CONFIG" --batch 1,2 --prompt-len 8 --steps 2 \
     >"$tmp/ab.log" 2>&1 &&
   grep -q "^== old, round 1" "$tmp/ab/ab.txt" && grep -q "^== new, round 1" "$tmp/ab/ab.txt" &&
   [ "$(grep -cE '^ +2 +[0-9.]+ ' "$tmp/ab/ab.txt")" = 2 ] && grep -q "status 0" "$tmp/ab/ab.txt"; then
  ok both_versions_run
else
  ko both_versions_run "$(cat "$tmp/ab.log")"
fi

# Not a library: the old runs must fail (they load it), the new ones still run.
echo "not a library" | xz -c > "$tmp/bad.xz"
if B=$BUILDDIR OLD=$tmp/bad.xz OUT=$tmp/ab2 ROUNDS=1 "$AB" "$CONFIG" --batch 1 --prompt-len 8 --steps 2 \
     >"$tmp/ab2.log" 2>&1; then
  ko broken_old_library "exit status 0: $(cat "$tmp/ab2.log")"
elif grep -q "status 1" "$tmp/ab2/ab.txt" && grep -qE '^ +1 +[0-9.]+ ' "$tmp/ab2/lat_new_1.txt" &&
     ! grep -qE '^ +1 +[0-9.]+ ' "$tmp/ab2/lat_old_1.txt"; then
  ok broken_old_library
else
  ko broken_old_library "$(cat "$tmp/ab2.log")"
fi

# One library, two settings (OLD_ENV / NEW_ENV, no OLD): each turn runs under its own
# variables (the log level shows which), and both run.
if B=$BUILDDIR OLD_ENV=PAGODA_LOG=debug NEW_ENV=PAGODA_LOG=warn OUT=$tmp/ab3 ROUNDS=1 "$AB" \
     "$CONFIG" --batch 1 --prompt-len 8 --steps 2 >"$tmp/ab3.log" 2>&1 &&
   grep -q "^== old PAGODA_LOG=debug, round 1" "$tmp/ab3/ab.txt" &&
   grep -q "^== new PAGODA_LOG=warn, round 1" "$tmp/ab3/ab.txt" &&
   grep -q "pagoda debug" "$tmp/ab3/lat_old_1.txt" &&
   ! grep -qE "pagoda (debug|info)" "$tmp/ab3/lat_new_1.txt" &&
   grep -qE '^ +1 +[0-9.]+ ' "$tmp/ab3/lat_new_1.txt"; then
  ok env_switch
else
  ko env_switch "$(cat "$tmp/ab3.log")"
fi

# BENCH_ATTENTION: `pagoda bench attention ARGS` in each turn, its log kept. A case list the
# bench refuses (it parses --mixed before it opens a GPU) shows the words reached it, and a
# turn with no case lines fails the run.
if B=$BUILDDIR OLD_ENV=PAGODA_LOG=warn NEW_ENV=PAGODA_LOG=warn OUT=$tmp/ab4 ROUNDS=1 \
     BENCH_ATTENTION="--mixed 0x1+1" "$AB" "$CONFIG" --batch 1 --prompt-len 8 --steps 2 \
     >"$tmp/ab4.log" 2>&1; then
  ko bench_attention "exit status 0 without a case line: $(cat "$tmp/ab4.log")"
elif grep -q "takes BxL+P" "$tmp/ab4/attn_old_1.txt" &&
     grep -q "takes BxL+P" "$tmp/ab4/attn_new_1.txt" && grep -q "status 1" "$tmp/ab4/ab.txt" &&
     grep -qE '^ +1 +[0-9.]+ ' "$tmp/ab4/lat_new_1.txt"; then
  ok bench_attention
else
  ko bench_attention "$(cat "$tmp/ab4.log")"
fi

# ncu_ab.py: the CSV layout of `ncu --csv --page raw --metrics gpu__time_duration.sum`.
csv() {
  echo '"ID","Kernel Name","Grid Size","gpu__time_duration.sum"'
  echo '"","","","nsecond"'
  for l in "$@"; do echo "$l"; done
}
csv '"0","gemv_a(args)","(256, 1, 1)","10,000"' '"1","gemv_b(args)","(64, 1, 1)","4,000"' \
    '"2","gemv_a(args)","(256, 1, 1)","12,000"' > "$tmp/o.csv"
csv '"0","gemv_a(args)","(256, 1, 1)","8,000"' '"1","gemv_b(args)","(64, 1, 1)","4,000"' \
    '"2","gemv_a(args)","(256, 1, 1)","14,000"' > "$tmp/n.csv"
if python3 "$SRCDIR/scripts/ncu_ab.py" "$tmp/o.csv" "$tmp/n.csv" > "$tmp/ncu.txt" 2>&1 &&
   grep -qE '^gemv_a +\(256, 1, 1\) +2 +11\.00 +11\.00 +1\.00' "$tmp/ncu.txt" &&
   grep -qE '^gemv_b +\(64, 1, 1\) +1 +4\.00 +4\.00 +1\.00' "$tmp/ncu.txt"; then
  ok ncu_ab_groups
else
  ko ncu_ab_groups "$(cat "$tmp/ncu.txt")"
fi
csv '"0","gemv_a(args)","(256, 1, 1)","8,000"' '"1","gemv_c(args)","(64, 1, 1)","4,000"' > "$tmp/m.csv"
if python3 "$SRCDIR/scripts/ncu_ab.py" "$tmp/o.csv" "$tmp/m.csv" > "$tmp/ncu2.txt" 2>&1 &&
   grep -q "launch 1: .*the sequences differ, stopping" "$tmp/ncu2.txt" &&
   grep -qE '^gemv_a +\(256, 1, 1\) +1 +10\.00 +8\.00 +1\.25' "$tmp/ncu2.txt" &&
   ! grep -q '^gemv_c' "$tmp/ncu2.txt"; then
  ok ncu_ab_sequence_mismatch
else
  ko ncu_ab_sequence_mismatch "$(cat "$tmp/ncu2.txt")"
fi
finish
