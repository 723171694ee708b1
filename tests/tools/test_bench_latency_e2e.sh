#!/usr/bin/env bash
# `pagoda bench latency` in vLLM's form (--input-len, --output-len, --batch-size, ...) on the
# CPU with the tiny Llama fixture: vLLM's printed lines and --output-json keys, the mean and
# the numpy-style percentiles of the timed batches, parallel samples, the engine's flags
# reaching the engine, bad values and server flags refused; the step-level form unchanged.
# Prints a Criterion-style synthesis line.
set -u
SUITE=bench_latency_e2e
. "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/llama-f32
lat() { "$PAGODA" bench latency --model "$MODEL" --device cpu "$@"; }

if lat --input-len 8 --output-len 5 --batch-size 3 --n 2 --num-iters-warmup 1 --num-iters 5 \
     --output-json "$tmp/lat.json" >"$tmp/out" 2>"$tmp/err"; then
  if out=$(python3 - "$tmp/lat.json" "$tmp/out" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
lines = open(sys.argv[2]).read()
lat = r["latencies"]
assert len(lat) == 5 and all(x > 0 for x in lat), lat
assert abs(r["avg_latency"] - sum(lat) / 5) < 1e-6, r
s = sorted(lat)
def pct(p):                      # numpy.percentile, linear
    k = p / 100 * (len(s) - 1); lo = int(k)
    return s[-1] if lo >= len(s) - 1 else s[lo] + (k - lo) * (s[lo + 1] - s[lo])
for p in ("10", "25", "50", "75", "90", "99"):
    assert abs(r["percentiles"][p] - pct(int(p))) < 1e-6, (p, r)
    m = re.search(r"^%s%% percentile latency: ([0-9.]+) seconds$" % p, lines, re.M)
    assert m and abs(float(m.group(1)) - r["percentiles"][p]) < 1e-6, p
m = re.search(r"^Avg latency: ([0-9.]+) seconds$", lines, re.M)
assert m and abs(float(m.group(1)) - r["avg_latency"]) < 1e-6
assert "3 requests of 8 prompt tokens, 5 tokens each x 2 samples" in lines
PY
  ); then ok report; else ko report "$out $(cat "$tmp/out")"; fi
else
  ko report "$(tail -3 "$tmp/err")"
fi

# An engine flag reaches the engine: a 9-token prompt is refused at --max-model-len 8.
if lat --input-len 9 --output-len 2 --batch-size 1 --num-iters 1 --num-iters-warmup 0 \
     --max-model-len 8 >/dev/null 2>"$tmp/err"; then
  ko engine_flag "a 9-token prompt ran at --max-model-len 8"
elif grep -q "max_model_len" "$tmp/err"; then ok engine_flag; else ko engine_flag "$(tail -2 "$tmp/err")"; fi

bad=""
for args in "--batch-size 0" "--num-iters 0" "--n 0" "--input-len x" "--port 8000"; do
  # shellcheck disable=SC2086 # the words are arguments
  if lat --output-len 2 $args >/dev/null 2>"$tmp/err"; then bad="$bad [$args accepted]"; fi
done
lat --output-len 2 --port 8000 >/dev/null 2>"$tmp/err"
grep -q -- "--port is not an engine option" "$tmp/err" || bad="$bad [--port: $(head -c 160 "$tmp/err")]"
if [ -z "$bad" ]; then ok refused; else ko refused "$bad"; fi

# Without this form's flags, `bench latency` is still the step-level bench: its own usage.
if "$PAGODA" bench latency --help 2>&1 | grep -q -- "--prompt-len LIST"; then ok step_level_form
else ko step_level_form "bench latency --help lost its options"; fi
finish
