#!/bin/bash
# pagoda's side of the workloads (workloads.py): the same lengths, counts, seeds and sampling as
# vllm_offline.py and vllm_serve.sh give vLLM.
#
#   PAGODA=.../tools/pagoda MODEL_DIR=/tmp/sidebyside/l8b bash scripts/sidebyside/pagoda_all.sh [offline|serve|all]
#
# offline: `pagoda bench throughput` for tput_128, tput_sharegpt, tput_1000, tput_2048 at pagoda's
#   defaults (on an H200: max_num_seqs 1024, max_num_batched_tokens 16384, vLLM's offline ones;
#   the report says what it chose) -- and when the defaults are not 1024 / 16384, tput_128 once
#   more at 1024 / 16384 --, then `pagoda bench latency` at batch 1 for lat_ctx128 and lat_ctx32k
#   (the 32k run on a copy of the config whose max_position_embeddings is 34,816, as vLLM's).
# serve: `pagoda serve` (random weights, Llama-3's tokenizer, max_num_seqs 1024 and
#   max_num_batched_tokens 8192 as vLLM's server) driven by serve_sweep.py as vllm_serve.sh does.
# Env: PAGODA (the tool), MODEL_DIR (serve: config.json + tokenizer.json + tokenizer_config.json),
# CONFIG (default scripts/configs/llama-3-8b/config.json), OUTDIR (default /tmp/sidebyside/pagoda),
# BUDGET (seconds for the whole script, default 520; a step starts only if its estimate fits),
# PORT (8010), ONLY (offline workload names, comma-separated), SERVE_ONLY / SWEEP_RATES (as
# vllm_serve.sh), HEALTH_WAIT (180), PAGODA_ARGS (more flags for every pagoda command that
# runs the engine, e.g. --async-scheduling; default none).
# stdout: progress lines and one JSON line per workload (also in OUTDIR/summary.jsonl); OUTDIR:
# every report.
set -u -o pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# shellcheck source=scripts/sidebyside/lib.sh
. "$HERE/lib.sh"

WHAT=${1:-all}
case "$WHAT" in offline|serve|all) ;; *) echo "usage: pagoda_all.sh [offline|serve|all]"; exit 2 ;; esac
: "${PAGODA:?PAGODA=the pagoda tool}"
CONFIG=${CONFIG:-$REPO/scripts/configs/llama-3-8b/config.json}
OUTDIR=${OUTDIR:-/tmp/sidebyside/pagoda}
BUDGET=${BUDGET:-520}
PORT=${PORT:-8010}
SUMMARY=$OUTDIR/summary.jsonl
mkdir -p "$OUTDIR"
W() { python3 "$HERE/workloads.py" "$@"; }
# est NAME: the workload's planned seconds (workloads.py), plus start-up and warm-up.
est() { python3 -c "import sys; sys.path.insert(0, '$HERE'); import workloads as W; print(W.OFFLINE['$1']['est_s'] + 15)"; }
emit() { tee -a "$SUMMARY"; }
wanted() { [ -z "${ONLY:-}" ] || [[ ",$ONLY," == *",$1,"* ]]; }
status=0

# tput NAME TAG [pagoda args...]: one `pagoda bench throughput` run and its JSON line.
tput() {
  local name=$1 tag=$2; shift 2
  fits "$(est "$name")" "$BUDGET" || { echo "{\"engine\": \"pagoda\", \"workload\": \"$name\", \"skipped\": \"time budget\"}" | emit; return 0; }
  stamp "pagoda bench throughput $name ($tag)"
  # shellcheck disable=SC2046,SC2086 # the workload's arguments and PAGODA_ARGS are words
  PAGODA_LOG=info timeout 400 "$PAGODA" bench throughput --random-weights "$CONFIG" $(W pagoda-args "$name") \
    --json "$OUTDIR/$tag.json" "$@" ${PAGODA_ARGS:-} > "$OUTDIR/$tag.txt" 2>&1 || { stamp "$name failed: $(tail -n 3 "$OUTDIR/$tag.txt")"; status=1; return 0; }
  python3 "$HERE/summarize.py" pagoda-tput "$name" "$OUTDIR/$tag.txt" "$OUTDIR/$tag.json" | emit
}

# latency NAME CONFIG: one `pagoda bench latency` run at batch 1 and its JSON line.
latency() {
  local name=$1 cfg=$2
  fits "$(est "$name")" "$BUDGET" || { echo "{\"engine\": \"pagoda\", \"workload\": \"$name\", \"skipped\": \"time budget\"}" | emit; return 0; }
  stamp "pagoda bench latency $name"
  # shellcheck disable=SC2046
  PAGODA_LOG=info timeout 300 "$PAGODA" bench latency --random-weights "$cfg" $(W pagoda-args "$name") \
    > "$OUTDIR/$name.txt" 2>&1 || { stamp "$name failed: $(tail -n 3 "$OUTDIR/$name.txt")"; status=1; return 0; }
  python3 "$HERE/summarize.py" pagoda-latency "$name" "$OUTDIR/$name.txt" | emit
}

offline() {
  local long
  long=$(W long-config "$CONFIG" /tmp/sidebyside/l8b-long) || exit 1
  for name in tput_128 tput_sharegpt tput_1000 tput_2048; do
    wanted "$name" && tput "$name" "$name"
    # At 1024 / 16384 too, when pagoda's defaults on this GPU are something else.
    if [ "$name" = tput_128 ] && wanted tput_128 && [ -e "$OUTDIR/tput_128.txt" ] &&
       ! grep -q "engine: max_num_seqs 1024, max_num_batched_tokens 16384" "$OUTDIR/tput_128.txt"; then
      tput tput_128 tput_128_1024x16384 --max-num-seqs 1024 --max-num-batched-tokens 16384
    fi
  done
  wanted lat_ctx128 && latency lat_ctx128 "$CONFIG"
  wanted lat_ctx32k && latency lat_ctx32k "$long"
}

serve() {
  : "${MODEL_DIR:?MODEL_DIR=config.json + Llama-3 tokenizer files}"
  fits 60 "$BUDGET" || return 0
  stamp "pagoda serve $MODEL_DIR"
  # shellcheck disable=SC2086 # PAGODA_ARGS is words
  "$PAGODA" serve "$MODEL_DIR" --load-format dummy --host 127.0.0.1 --port "$PORT" \
    --served-model-name l8b --max-num-seqs 1024 --max-num-batched-tokens 8192 \
    --disable-log-requests ${PAGODA_ARGS:-} > "$OUTDIR/server.log" 2>&1 &
  local server=$!
  trap 'stop_server '"$server" EXIT
  if ! wait_health "$PORT" "$server" "$OUTDIR/server.log" "${HEALTH_WAIT:-180}"; then
    status=1; return 0
  fi
  stamp "pagoda serve: /health 200"
  grep -E "max_num_seqs|GPU KV cache size|device: " "$OUTDIR/server.log" | head -5
  python3 "$HERE/serve_sweep.py" run --pagoda "$PAGODA" --port "$PORT" --model l8b --engine pagoda \
    --out "$OUTDIR" --time-budget "$(left "$BUDGET")" \
    ${SERVE_ONLY:+--only "$SERVE_ONLY"} ${SWEEP_RATES:+--rates "$SWEEP_RATES"} | emit || status=1
  stop_server "$server"
  trap - EXIT
}

case "$WHAT" in
  offline) offline ;;
  serve) serve ;;
  all) offline; serve ;;
esac
stamp "pagoda_all.sh $WHAT done (status $status)"
exit $status
