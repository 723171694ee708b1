#!/usr/bin/env bash
# scripts/gpu_variants.sh on the CPU (the device machine runs it on the GPU): two variants of
# the environment and an old library (scripts/gpu_ab.sh --pack-old), `pagoda bench latency`
# on tiny-chat's config under each, each variant's variables reaching its runs (the log level
# shows which), a GPU test program run under each variant (it skips here: reported, and a
# failure), the logs in one archive; tests and bench quant narrowed to the variants named;
# a broken old library fails the script. Prints a Criterion-style synthesis.
set -u
SUITE=gpu_variants
. "$(dirname "$0")/../lib/harness.sh"
V=$SRCDIR/scripts/gpu_variants.sh
CONFIG=$SRCDIR/tests/fixtures/models/tiny-chat/config.json
export OPENBLAS_NUM_THREADS=1
"$SRCDIR/scripts/gpu_ab.sh" --pack-old "$BUILDDIR" "$tmp/old.xz" > /dev/null 2>&1

run_variants() {  # OUT-DIR OLD-XZ TESTS
  WT=$SRCDIR BUILD=$BUILDDIR CONFIG=$CONFIG OUT=$1 OLD=$2 TESTS=$3 STEP_QUANT= ROUNDS=1 \
    STEP_ARGS="--batch 1,2 --prompt-len 8 --steps 2" \
    VARIANTS='PAGODA_LOG=debug;PAGODA_LOG=warn' "$V"
}

if run_variants "$tmp/a" "$tmp/old.xz" "" > "$tmp/a.log" 2>&1 &&
   grep -q "^v0: PAGODA_LOG=debug" "$tmp/a.log" && grep -q "^old: the defaults under" "$tmp/a.log" &&
   [ "$(grep -cE '^step (v0|v1|old) round 1: 1 [0-9.]+ \| 2 [0-9.]+ \| $' "$tmp/a.log")" = 3 ] &&
   mkdir -p "$tmp/a/x" && tar xzf "$tmp/a/variants.tgz" -C "$tmp/a/x" &&
   grep -q "pagoda debug" "$tmp/a/x/step_v0_1.txt" &&
   ! grep -qE "pagoda (debug|info)" "$tmp/a/x/step_v1_1.txt" && [ -s "$tmp/a/x/step_old_1.txt" ]; then
  ok variants_and_old_library_run
else
  ko variants_and_old_library_run "$(cat "$tmp/a.log")"
fi

# A GPU test program under each variant (not under the old library: it links its own); here
# it skips (exit 77), which the script reports and counts as a failure.
if ! run_variants "$tmp/b" "" test_cuda_quant > "$tmp/b.log" 2>&1 &&
   [ "$(grep -c "^test_cuda_quant under v[01]: skipped, no CUDA device" "$tmp/b.log")" = 2 ] &&
   grep -q "status 1" "$tmp/b.log" && grep -qE '^step v1 round 1: 1 [0-9.]+' "$tmp/b.log" &&
   tar tzf "$tmp/b/variants.tgz" | grep -q "test_cuda_quant_v1.log"; then
  ok test_programs_under_each_variant
else
  ko test_programs_under_each_variant "$(cat "$tmp/b.log")"
fi

# TEST_UNDER and QUANT_UNDER narrow the tests and bench quant to the variants named.
if ! WT=$SRCDIR BUILD=$BUILDDIR CONFIG=$CONFIG OUT=$tmp/d TESTS=test_cuda_quant TEST_UNDER=v1 \
     QUANT_ARGS="--format nope" QUANT_UNDER="v0" STEP_QUANT= ROUNDS=0 \
     VARIANTS='PAGODA_LOG=debug;PAGODA_LOG=warn' "$V" > "$tmp/d.log" 2>&1 &&
   [ "$(grep -c "^test_cuda_quant under v[01]: skipped" "$tmp/d.log")" = 1 ] &&
   grep -q "^test_cuda_quant under v1: skipped" "$tmp/d.log" &&
   [ "$(grep -c "bench quant --format nope under" "$tmp/d.log")" = 1 ] &&
   grep -q "bench quant --format nope under v0" "$tmp/d.log" &&
   ! grep -q "^step " "$tmp/d.log"; then
  ok tests_and_quant_under_the_variants_named
else
  ko tests_and_quant_under_the_variants_named "$(cat "$tmp/d.log")"
fi

# Not a library: the old runs fail, and so does the script.
echo "not a library" | xz -c > "$tmp/bad.xz"
if run_variants "$tmp/c" "$tmp/bad.xz" "" > "$tmp/c.log" 2>&1; then
  ko broken_old_library "exit status 0: $(cat "$tmp/c.log")"
elif grep -qE '^step v0 round 1: 1 [0-9.]+' "$tmp/c.log" && grep -q '^step old round 1: $' "$tmp/c.log" &&
     grep -q "status 1" "$tmp/c.log"; then
  ok broken_old_library
else
  ko broken_old_library "$(cat "$tmp/c.log")"
fi
finish
