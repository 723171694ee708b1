#!/usr/bin/env bash
# curl against a real `pagoda serve`: the SSE framing byte for byte, status codes, headers,
# bearer auth, CORS, and a clean SIGTERM exit. Prints a Criterion-style synthesis line.
set -u
SUITE=http_curl; . "$(dirname "$0")/../lib/harness.sh"
MODEL=$SRCDIR/tests/fixtures/models/tiny-chat
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
finish() {                 # ends the script
  echo "[====] Synthesis: Tested: $((pass + fail)) | Passing: $pass | Failing: $fail | Crashing: 0"
  [ "$fail" -eq 0 ]
  exit $?
}

"$BUILDDIR/tools/pagoda" serve --model "$MODEL" --port 0 --api-key K \
  --cors-origins "http://a.example, http://b.example" --grace 5 2>"$tmp/log" &
pid=$!
port=$(serve_port "$pid" "$tmp/log" 'ready:')
if ! grep -q 'ready:' "$tmp/log" || [ -z "$port" ]; then
  cat "$tmp/log"; ko start "the server did not start"; finish
fi
ok start
U=http://127.0.0.1:$port
A=(-H "Authorization: Bearer K")

# status CODE: the HTTP status of a curl call (its body goes to $tmp/body)
status() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
expect_status() {   # name want curl-args...
  local name=$1 want=$2; shift 2
  local got; got=$(status "$@")
  if [ "$got" = "$want" ]; then ok "$name"; else ko "$name" "status $got, want $want: $(head -c 300 "$tmp/body")"; fi
}

# ---- SSE framing, byte for byte ---------------------------------------------------------
# logit_bias forces token 'x' (id 120): the content of every chunk is known; only the id
# and the creation time vary, and they must be the same in every chunk.
req='{"prompt":"hello","max_tokens":3,"stream":true,"logit_bias":{"120":100},"ignore_eos":true}'
curl -sN -D "$tmp/headers" "${A[@]}" -H 'Content-Type: application/json' -d "$req" \
  "$U/v1/completions" >"$tmp/sse"
id=$(sed -n 's/^data: {"id":"\(cmpl-[0-9a-f]*\)".*/\1/p' "$tmp/sse" | sort -u)
created=$(sed -n 's/.*"created":\([0-9]*\).*/\1/p' "$tmp/sse" | sort -u)
{
  for fin in null null '"length"'; do
    printf 'data: {"id":"%s","object":"text_completion","created":%s,"model":"tiny-chat","system_fingerprint":null,"choices":[{"index":0,"text":"x","logprobs":null,"finish_reason":%s}]}\n\n' \
      "$id" "$created" "$fin"
  done
  printf 'data: [DONE]\n\n'
} >"$tmp/sse.want"
if [ "$(echo "$id" | wc -l)" = 1 ] && [ "$(echo "$created" | wc -l)" = 1 ] && cmp -s "$tmp/sse" "$tmp/sse.want"; then
  ok sse_bytes
else
  ko sse_bytes "stream differs: $(diff <(cat -A "$tmp/sse") <(cat -A "$tmp/sse.want") | head -20)"
fi
if grep -qi '^content-type: text/event-stream' "$tmp/headers" && grep -qi '^cache-control: no-cache' "$tmp/headers" \
   && grep -qi '^transfer-encoding: chunked' "$tmp/headers" && head -n1 "$tmp/headers" | grep -q ' 200'; then
  ok sse_headers
else
  ko sse_headers "$(cat "$tmp/headers")"
fi

# Chat with usage: role first, the usage chunk last (no choices), then [DONE]; nothing else.
req='{"messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true,"logit_bias":{"120":100},"stream_options":{"include_usage":true}}'
curl -sN "${A[@]}" -d "$req" "$U/v1/chat/completions" >"$tmp/chat"
n_events=$(grep -c '^data: ' "$tmp/chat")
if [ "$n_events" = 5 ] && [ "$(grep -c '^$' "$tmp/chat")" = 5 ] && [ "$(wc -l <"$tmp/chat")" = 10 ] \
   && sed -n 1p "$tmp/chat" | grep -q '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}\],"usage":null}$' \
   && sed -n 3p "$tmp/chat" | grep -q '"delta":{"content":"x"},"logprobs":null,"finish_reason":null}\],"usage":null}$' \
   && sed -n 5p "$tmp/chat" | grep -q '"delta":{"content":"x"},"logprobs":null,"finish_reason":"length"}\],"usage":null}$' \
   && sed -n 7p "$tmp/chat" | grep -q '"choices":\[\],"usage":{"prompt_tokens":[0-9]*,"completion_tokens":2,"total_tokens":[0-9]*,' \
   && [ "$(tail -c 14 "$tmp/chat")" = "$(printf 'data: [DONE]\n\n')" ]; then
  ok sse_chat_usage
else
  ko sse_chat_usage "$(cat -A "$tmp/chat" | head -20)"
fi

# ---- status codes ------------------------------------------------------------------------
expect_status health_open 200 "$U/health"
expect_status metrics_open 200 "$U/metrics"
expect_status models_needs_key 401 "$U/v1/models"
expect_status wrong_key 401 -H "Authorization: Bearer nope" "$U/v1/models"
expect_status basic_auth_refused 401 -u user:K "$U/v1/models"
expect_status models 200 "${A[@]}" "$U/v1/models"
expect_status version 200 "${A[@]}" "$U/version"
expect_status unknown_route 404 "${A[@]}" "$U/v2/anything"
expect_status wrong_method 405 "${A[@]}" -X DELETE "$U/v1/completions"
expect_status get_on_post_route 405 "${A[@]}" "$U/v1/chat/completions"
expect_status invalid_json 400 "${A[@]}" -d '{"prompt":' "$U/v1/completions"
expect_status unknown_model 404 "${A[@]}" -d '{"prompt":"hi","model":"x"}' "$U/v1/completions"
expect_status plain_completion 200 "${A[@]}" -d '{"prompt":"hi","max_tokens":2}' "$U/v1/completions"
expect_status tokenize 200 "${A[@]}" -d '{"prompt":"hello world"}' "$U/tokenize"
if grep -q '"tokens":\[' "$tmp/body" && grep -q '"max_model_len":512' "$tmp/body"; then ok tokenize_body; else ko tokenize_body "$(cat "$tmp/body")"; fi
expect_status detokenize 200 "${A[@]}" -d '{"tokens":[104,105]}' "$U/detokenize"
if [ "$(cat "$tmp/body")" = '{"prompt":"hi"}' ]; then ok detokenize_body; else ko detokenize_body "$(cat "$tmp/body")"; fi
head -c 5000000 /dev/zero | tr '\0' 'a' >"$tmp/big"
expect_status body_too_large 413 "${A[@]}" -H 'Content-Type: application/json' --data-binary @"$tmp/big" "$U/v1/completions"
# The error shape.
status "${A[@]}" -d '{"prompt":"hi","temperature":"x"}' "$U/v1/completions" >/dev/null
if [ "$(cat "$tmp/body")" = '{"error":{"message":"'"'"'temperature'"'"' must be a number","type":"invalid_request_error","param":"temperature","code":null}}' ]; then
  ok error_shape
else
  ko error_shape "$(cat "$tmp/body")"
fi

# ---- CORS ----------------------------------------------------------------------------------
h=$(curl -s -D - -o /dev/null -X OPTIONS -H 'Origin: http://b.example' \
    -H 'Access-Control-Request-Method: POST' "$U/v1/completions")
if echo "$h" | head -n1 | grep -q ' 204' && echo "$h" | grep -qi '^access-control-allow-origin: http://b.example' \
   && echo "$h" | grep -qi '^access-control-allow-headers: .*authorization'; then
  ok cors_preflight
else
  ko cors_preflight "$h"
fi
h=$(curl -s -D - -o /dev/null -H 'Origin: http://evil.example' "$U/health")
if echo "$h" | grep -qi '^access-control-allow-origin'; then ko cors_other_origin "$h"; else ok cors_other_origin; fi

# ---- metrics count what happened ---------------------------------------------------------
curl -s "$U/metrics" >"$tmp/metrics"
if grep -q '^pagoda:http_requests_total{model_name="tiny-chat",route="/v1/models",status="401"} 3$' "$tmp/metrics" \
   && grep -Eq '^pagoda:kv_cache_usage_perc{model_name="tiny-chat"} 0(\.0)?$' "$tmp/metrics" \
   && grep -q '^pagoda:http_requests_total{model_name="tiny-chat",route="/v1/completions",status="413"} 1$' "$tmp/metrics"; then
  ok metrics_counts
else
  ko metrics_counts "$(grep -E 'http_requests_total|kv_cache_usage' "$tmp/metrics")"
fi

# ---- SIGTERM -----------------------------------------------------------------------------
kill -TERM "$pid"
rc=124
for _ in $(seq 1 300); do
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; break; fi
  sleep 0.1
done
if [ "$rc" = 0 ] && grep -q 'pagoda serve: stopped' "$tmp/log"; then ok sigterm_exit_0; else ko sigterm_exit_0 "rc $rc: $(tail -5 "$tmp/log")"; fi
pid=
finish
