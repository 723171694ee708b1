#!/usr/bin/env bash
# `pagoda bench serve` against a real `pagoda serve` on the CPU fixture tiny-chat: the counts
# of its report agree with the workload (every token asked is generated with ignore_eos),
# the saved JSON has vLLM's keys and sane values, a finite request rate spreads the sends,
# chat and ShareGPT-file workloads run, the server's step counters (its /metrics before and
# after the run) are reported, requests the server refuses are reported as failed
# (and a run where all fail exits 1), and against a deliberately faulty server (HTTP 500s,
# streams cut before [DONE]) every failure is counted with its reason. Prints a
# Criterion-style synthesis line.
set -u
SUITE=bench_serve; . "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/tiny-chat
pid= fpid=
cleanup() {
  for p in $pid $fpid; do kill -0 "$p" 2>/dev/null && kill -KILL "$p"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
finish() {                 # the queued checks first; ends the script
  run_checks
  echo "[====] Synthesis: Tested: $((pass + fail)) | Passing: $pass | Failing: $fail | Crashing: 0"
  [ "$fail" -eq 0 ]
  exit $?
}
# check NAME JSON PYTHON-EXPRESSION: queued, evaluated over the result's keys (r: the whole
# result) by one Python process at the end (each process start costs most of a second on a
# loaded machine).
check() { printf '%s\037%s\037%s\036' "$1" "$2" "$3" >>"$tmp/checks"; }
# has_lines NAME FILE ERE...: ok NAME when each extended regex matches a line of FILE (a
# report's table), else ko NAME with the first one missing and the whole FILE.
has_lines() {
  local name=$1 file=$2 re
  shift 2
  for re in "$@"; do
    grep -Eq -- "$re" "$file" || { ko "$name" "no line matching $re in: $(cat "$file")"; return; }
  done
  ok "$name"
}
run_checks() {
  [ -s "$tmp/checks" ] || return 0
  python3 - "$tmp/checks" "$tmp/counts" <<'PY'
import json, sys
passed = failed = 0
for item in open(sys.argv[1]).read().split("\036"):
    if not item:
        continue
    name, path, expr = item.split("\037")
    try:
        r = json.load(open(path))
        ok = eval(expr, {"r": r}, r)
        why = "false: " + expr + " with " + json.dumps({k: v for k, v in r.items() if not isinstance(v, list)})
    except Exception as e:
        ok, why = False, repr(e)
    if ok:
        passed += 1
        print("[PASS] bench_serve::" + name)
    else:
        failed += 1
        print("[FAIL] bench_serve::%s: %s" % (name, why))
open(sys.argv[2], "w").write("%d %d\n" % (passed, failed))
PY
  local p f
  read -r p f <"$tmp/counts" || { ko checks "the checker did not run"; return; }
  pass=$((pass + p)); fail=$((fail + f))
}
# bench NAME ARGS...: runs against $U with the result in $tmp/NAME.json, stdout in
# $tmp/NAME.out, stderr in $tmp/NAME.err; returns its exit status.
bench() {
  local name=$1; shift
  "$PAGODA" bench serve --base-url "$U" --ready-check-timeout-sec 30 --save-result \
    --save-detailed --result-dir "$tmp" --result-filename "$name.json" "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err"
}

"$PAGODA" serve --model "$MODEL" --port 0 2>"$tmp/server.log" &
pid=$!
# Only until it listens: the first run waits for its readiness (/health answers 503 until
# the engine is ready).
port=$(serve_port "$pid" "$tmp/server.log" 'listening on')
if [ -z "$port" ]; then
  cat "$tmp/server.log"; ko start "the server did not start"; finish
fi
U=http://127.0.0.1:$port

# ---- 24 random prompts of 16 tokens, 8 out, all at once, 4 at a time --------------------
KEYS='["date", "backend", "model_id", "num_prompts", "request_rate", "burstiness", "max_concurrency", "duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput", "request_goodput", "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors", "max_output_tokens_per_s", "max_concurrent_requests"] + [s + "_" + m + "_ms" for m in ("ttft", "tpot", "itl", "e2el") for s in ("mean", "median", "std", "p99")]'
if bench inf --num-prompts 24 --random-input-len 16 --random-output-len 8 --max-concurrency 4; then
  check inf_counts "$tmp/inf.json" 'completed == 24 and failed == 0 and total_input_tokens == 24 * 16 and total_output_tokens == 24 * 8 and input_lens == [16] * 24 and output_lens == [8] * 24'
  check inf_keys "$tmp/inf.json" "all(k in r for k in $KEYS) and model_id == 'tiny-chat' and request_rate == 'inf' and max_concurrency == 4 and request_goodput is None"
  check inf_latencies "$tmp/inf.json" 'all(x <= y for x, y in [(mean_ttft_ms, mean_e2el_ms), (median_ttft_ms, median_e2el_ms), (p99_ttft_ms, p99_e2el_ms)]) and 0 < mean_ttft_ms and p99_e2el_ms < 1000 * duration + 1 and all(t > 0 for t in ttfts) and min(ttfts) * 1000 <= mean_ttft_ms <= max(ttfts) * 1000'
  check inf_rates "$tmp/inf.json" 'output_throughput > 0 and abs(request_throughput * duration - 24) < 1e-6 * 24 and abs(output_throughput * duration - total_output_tokens) < 1e-3 and abs(total_token_throughput * duration - 24 * 24) < 1e-3'
  check inf_chunks "$tmp/inf.json" 'len(itls) == 24 and all(len(g) <= 7 for g in itls) and sum(len(g) for g in itls) > 0 and all(t >= 0 for g in itls for t in g) and errors == [""] * 24 and all(len(t) > 0 for t in generated_texts) and max_concurrent_requests >= 1'
  has_lines inf_table "$tmp/inf.out" '^============ Serving Benchmark Result ============$' \
    '^Successful requests: +24 *$' '^Total generated tokens: +192 *$' \
    '^-----Time per Output Token \(excl. 1st token\)------$' '^P99 E2EL \(ms\): +[0-9.]+ *$'
  # The server's step counters from its /metrics, before and after the run: a section after
  # the latencies and "server_steps" in the result (24 prompts of 16 tokens, 4 at a time:
  # prompt steps and decode-only steps both ran; the CPU backend measures device time;
  # async scheduling, the default, overlapped every step but the first of each busy spell).
  check server_steps "$tmp/inf.json" '(lambda s: s["steps"] > 0 and 0 < s["decode_only_steps"] <= s["steps"] and s["mixed_steps"] > 0 and s["decode_only_steps"] + s["mixed_steps"] == s["steps"] and s["decode_only_step_ms"] > 0 and s["mixed_step_ms"] > 0 and 0 < s["decode_only_step_device_ms"] <= s["decode_only_step_ms"] and all(s[k + "_ms"] >= 0 for k in ("schedule", "prepare", "model", "output")) and 0 < s["engine_busy_fraction"] <= 1.05 and 0 < s["overlapped_steps"] < s["steps"])(server_steps)'
  has_lines server_steps_table "$tmp/inf.out" '^----------Server Steps \(pagoda /metrics\)----------$' \
    '^Steps \(decode-only / mixed\): +[1-9][0-9]* / [1-9][0-9]*$' \
    '^Decode-only step \(ms, wall / device\): +[0-9.]+ / [0-9.]+$' \
    '^Mixed step \(ms, wall / device\): +[0-9.]+ / [0-9.]+$' \
    '^Phase ms a step \(sched/prep/model/out\): +[0-9.]+ / [0-9.]+ / [0-9.]+ / [0-9.]+$'
else
  ko inf "rc $?: $(cat "$tmp/inf.err")"
fi

# ---- a finite rate: the last request is sent at 16 / 40 s; a loose SLO keeps all good -----
# (and a 4-token prefix shared by every prompt, counted in its length)
if bench rate --num-prompts 16 --random-input-len 8 --random-output-len 4 --request-rate 40 \
     --random-prefix-len 4 --goodput e2el:60000 ttft:60000 --metric-percentiles 90,99; then
  check rate_spread "$tmp/rate.json" 'completed == 16 and total_output_tokens == 64 and input_lens == [12] * 16 and duration >= 0.4 and request_rate == 40.0 and burstiness == 1.0 and max_concurrency is None'
  check rate_goodput "$tmp/rate.json" 'request_goodput == request_throughput and p90_ttft_ms <= p99_ttft_ms and "p90_e2el_ms" in r'
else
  ko rate "rc $?: $(cat "$tmp/rate.err")"
fi
# An SLO nobody meets (TTFT under 1 microsecond): goodput 0, throughput not.
# Two warm-up requests first (untimed: not in the result).
if bench slo --num-prompts 4 --random-input-len 8 --random-output-len 4 --goodput ttft:0.001 \
     --num-warmups 2; then
  check slo_goodput "$tmp/slo.json" 'completed == 4 and request_goodput == 0 and request_throughput > 0'
  if grep -q '^Warmup run completed.$' "$tmp/slo.out"; then ok warmups; else ko warmups "$(cat "$tmp/slo.out")"; fi
else
  ko slo "rc $?: $(cat "$tmp/slo.err")"
fi
# --extra-body reaches every request: a temperature the server refuses fails them all.
bench extra --num-prompts 3 --random-input-len 8 --random-output-len 4 --extra-body '{"temperature": "hot"}'
rc=$?
if [ "$rc" = 1 ]; then
  check extra_body "$tmp/extra.json" 'failed == 3 and all(e.startswith("HTTP 400: ") and "temperature" in e for e in errors)'
else
  ko extra_body "rc $rc: $(cat "$tmp/extra.err")"
fi

# A failed untimed run stops the benchmark before the timed one, naming the run and the
# server's error: the warm-up, and the unconstrained baseline of structured output.
bench warmfail --num-prompts 2 --random-input-len 8 --random-output-len 2 --num-warmups 1 \
  --extra-body '{"temperature": "hot"}'
rc=$?
if [ "$rc" = 1 ] && grep -q 'the warm-up failed: HTTP 400' "$tmp/warmfail.err" \
   && ! grep -q 'Warmup run completed' "$tmp/warmfail.out" && [ ! -e "$tmp/warmfail.json" ]; then
  ok warmup_failure
else
  ko warmup_failure "rc $rc: $(cat "$tmp/warmfail.err")"
fi
bench basefail --num-prompts 2 --random-input-len 8 --random-output-len 2 \
  --structured-output-ratio 1 --structured-output-baseline --extra-body '{"temperature": "hot"}'
rc=$?
if [ "$rc" = 1 ] && grep -q 'the baseline run failed: HTTP 400' "$tmp/basefail.err" \
   && [ ! -e "$tmp/basefail.json" ]; then
  ok baseline_failure
else
  ko baseline_failure "rc $rc: $(cat "$tmp/basefail.err")"
fi

# --append-result: a second run appended to the first's file, one JSON document a line.
bench app1 --num-prompts 3 --random-input-len 8 --random-output-len 2 --result-filename app.json &&
  bench app2 --num-prompts 2 --random-input-len 8 --random-output-len 2 --append-result \
    --result-filename app.json
rc=$?
if [ "$rc" = 0 ] && [ "$(wc -l <"$tmp/app.json")" = 1 ] &&
   [ "$(python3 -c 'import json,sys; print([json.loads(l)["num_prompts"] for l in open(sys.argv[1])])' "$tmp/app.json")" = "[3, 2]" ]; then
  ok append_result
else
  ko append_result "rc $rc: $(cat "$tmp/app2.err") $(head -c 300 "$tmp/app.json")"
fi

# ---- chat, and a ShareGPT file -------------------------------------------------------------
if bench chat --backend openai-chat --num-prompts 8 --random-input-len 12 --random-output-len 4 \
     --max-concurrency 3; then
  check chat_counts "$tmp/chat.json" 'completed == 8 and total_output_tokens == 32 and backend == "openai-chat" and all(i > 0 for i in input_lens)'
else
  ko chat "rc $?: $(cat "$tmp/chat.err")"
fi
{
  printf '['
  for i in $(seq 0 19); do
    printf '{"id": "%d", "conversations": [{"from": "human", "value": "Tell me about the number %d and why people like it."}, {"from": "gpt", "value": "The number %d is liked because it is round%s."}]}, ' \
      "$i" "$i" "$i" "$(printf ' and round%.0s' $(seq 0 $((i % 4))))"
  done
  printf '{"id": "short", "conversations": [{"from": "human", "value": "one turn only"}]}]\n'
} >"$tmp/sharegpt.json"
if bench sg --dataset-name sharegpt --dataset-path "$tmp/sharegpt.json" --num-prompts 10 --seed 3; then
  check sharegpt_file "$tmp/sg.json" 'completed == 10 and all(i >= 4 for i in input_lens) and all(0 < o for o in output_lens) and total_input_tokens == sum(input_lens)'
else
  ko sharegpt_file "rc $?: $(cat "$tmp/sg.err")"
fi

# ---- --structured-output-ratio: half the requests carry the regex, and their texts match
# it (random weights: a free text is never all digits); with --structured-output-baseline the
# same requests run unconstrained first, and both throughputs and their ratio are reported.
if bench so --num-prompts 8 --random-input-len 8 --random-output-len 6 --max-concurrency 4 \
     --structured-output-ratio 0.5 --structured-output-regex '[0-9]+' \
     --structured-output-baseline; then
  check so_texts "$tmp/so.json" 'num_constrained == 4 and sum(bool(__import__("re").fullmatch("[0-9]+", t)) for t in generated_texts) == 4 and [bool(__import__("re").fullmatch("[0-9]+", t)) for t in generated_texts] == [i % 2 == 1 for i in range(8)] and total_output_tokens == 48'
  check so_figures "$tmp/so.json" 'structured_output_ratio == 0.5 and structured_output_regex == "[0-9]+" and constrained_output_throughput > 0 and unconstrained_output_throughput > 0 and abs(constrained_output_throughput + unconstrained_output_throughput - output_throughput) < 1e-6 * output_throughput and baseline_output_throughput > 0 and abs(structured_output_throughput_ratio - output_throughput / baseline_output_throughput) < 1e-9 and constrained_mean_tpot_ms >= 0'
  has_lines so_table "$tmp/so.out" '^Structured output: 4 of 8 requests carry' \
    '^Output tok/s, run without constraints: +[0-9.]+ *$' \
    '^This run / without constraints \(%\): +[0-9.]+ *$'
else
  ko so "rc $?: $(cat "$tmp/so.err")"
fi
# without the baseline flag: no baseline figure
if bench so0 --num-prompts 4 --random-input-len 8 --random-output-len 4 --structured-output-ratio 1; then
  check so_all "$tmp/so0.json" 'num_constrained == 4 and baseline_output_throughput is None and structured_output_throughput_ratio is None and unconstrained_output_throughput == 0 and all(all(" " <= c <= "~" for c in t) for t in generated_texts)'
else
  ko so0 "rc $?: $(cat "$tmp/so0.err")"
fi

# ---- refusals: prompts over max_model_len (512) are failed requests, not a crash ----------
# Inputs 200..600 with outputs 4..12 (seeded): some fit, some do not.
if bench mixed --num-prompts 10 --random-input-len 400 --random-range-ratio 0.5 \
     --random-output-len 8 --seed 0; then
  check mixed_counts "$tmp/mixed.json" 'completed + failed == 10 and completed >= 1 and failed >= 1 and all((e != "") == (i + 4 > 512) for i, e in zip(input_lens, errors) if i + 4 > 512 or i + 12 <= 512)'
  check mixed_errors "$tmp/mixed.json" 'all(e.startswith("HTTP 400: ") and "maximum context length" in e for e in errors if e) and all(o == 0 for o, e in zip(output_lens, errors) if e)'
  if grep -q 'failed: HTTP 400' "$tmp/mixed.err"; then ok mixed_stderr; else ko mixed_stderr "$(cat "$tmp/mixed.err")"; fi
else
  ko mixed "rc $?: $(cat "$tmp/mixed.err")"
fi
bench refused --num-prompts 5 --random-input-len 600 --random-output-len 8
rc=$?
if [ "$rc" = 1 ] && grep -q '5 requests failed: HTTP 400' "$tmp/refused.err"; then
  check refused_counts "$tmp/refused.json" 'completed == 0 and failed == 5 and total_output_tokens == 0 and request_throughput == 0'
else
  ko refused "rc $rc: $(cat "$tmp/refused.err")"
fi
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=

# ---- a faulty server: per 3 requests one good stream, one HTTP 500, one cut stream --------
# (every stream's second token is "\u0000", the text of a byte-level tokenizer's byte 0: a
# token like any other, not a failure)
python3 - "$tmp/fake.port" <<'PY' &
import http.server, json, sys, threading
lock, n = threading.Lock(), [0]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path != "/v1/models":   # no /health: the client must not wait for one
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        body = json.dumps({"object": "list", "data": [{"id": "fake/m", "object": "model"}]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions":
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        with lock:
            k = n[0] % 3; n[0] += 1
        if k == 1:
            body = b'{"error": {"message": "boom", "type": "internal_error"}}'
            self.send_response(500); self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body); return
        self.send_response(200); self.send_header("Content-Type", "text/event-stream"); self.end_headers()
        for i in range(req["max_tokens"]):
            text = b'\\u0000' if i == 1 else b'a'
            self.wfile.write(b'data: {"choices":[{"index":0,"text":"%s","finish_reason":null}]}\n\n' % text)
            self.wfile.flush()
            if k == 2 and i == 1:
                return          # the connection closes mid-stream
        self.wfile.write(b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d}}\n\n'
                         % req["max_tokens"])
        self.wfile.write(b"data: [DONE]\n\n")
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
PY
fpid=$!
for _ in $(seq 1 100); do [ -s "$tmp/fake.port" ] && break; sleep 0.05; done
U=http://127.0.0.1:$(cat "$tmp/fake.port")
if bench faulty --num-prompts 9 --random-input-len 6 --random-output-len 5 --max-concurrency 2; then
  check faulty_counts "$tmp/faulty.json" 'completed == 3 and failed == 6 and total_output_tokens == 15 and model_id == "fake/m"'
  check faulty_errors "$tmp/faulty.json" 'sum(e == "HTTP 500: boom" for e in errors) == 3 and sum("[DONE]" in e or "broke off" in e for e in errors) == 3'
  # No /metrics there (vLLM's would have no pagoda counters): one line, no key, no failure.
  check faulty_no_steps "$tmp/faulty.json" '"server_steps" not in r'
  if grep -q '^Server steps: not reported (GET /metrics: HTTP 404)$' "$tmp/faulty.out"; then
    ok faulty_steps_line
  else
    ko faulty_steps_line "$(cat "$tmp/faulty.out")"
  fi
else
  ko faulty "rc $?: $(cat "$tmp/faulty.err")"
fi
kill -TERM "$fpid"; wait "$fpid" 2>/dev/null; fpid=
# Nobody listening: a clear message and exit 1.
"$PAGODA" bench serve --base-url "$U" --ready-check-timeout-sec 0 --num-prompts 2 >/dev/null 2>"$tmp/down.err"
rc=$?
if [ "$rc" = 1 ] && grep -q 'the server is not ready' "$tmp/down.err"; then ok server_down; else ko server_down "rc $rc: $(cat "$tmp/down.err")"; fi

# ---- bad arguments are refused with exit 2 -------------------------------------------------
bad=0
for args in "--dataset-name nope" "--goodput fast:1" "--request-rate 0" "--random-range-ratio 1" \
            "--percentile-metrics ttft,nope" "--backend tgi" "--extra-body [1]" "stray" \
            "--structured-output-ratio 1.5" "--structured-output-baseline"; do
  # shellcheck disable=SC2086
  "$PAGODA" bench serve $args >/dev/null 2>&1
  [ $? = 2 ] || { bad=1; ko usage "'$args' was not refused with exit 2"; }
done
[ "$bad" = 0 ] && ok usage
finish
