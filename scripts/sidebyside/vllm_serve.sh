#!/bin/bash
# vLLM's side of the served workloads: vLLM's OpenAI server on the Llama-3-8B shape with random
# weights (--load-format dummy) and Llama-3's tokenizer, driven by OUR client `pagoda bench serve`
# (serve_sweep.py: 128/128 and ShareGPT-shaped at --request-rate inf, then ShareGPT-shaped at the
# rates of workloads.SWEEP_RATES, to find where vLLM's median TPOT is 15 ms).
#
#   PYTHONPATH=/tmp/vllm-site PAGODA=.../tools/pagoda MODEL_DIR=/tmp/sidebyside/l8b \
#     bash scripts/sidebyside/vllm_serve.sh
#   bash scripts/sidebyside/vllm_serve.sh --print-server-args MODEL_DIR   (for serve_import_test.py)
#
# PYTHONPATH: the kit's parts and serve.tar.xz unpacked into one folder (run_lease.sh does it).
# MODEL_DIR: config.json + tokenizer.json + tokenizer_config.json. PAGODA: the pagoda tool.
# Env: OUTDIR (default /tmp/sidebyside/vllm-serve), PORT (8020), SERVED_NAME (l8b),
# MAX_NUM_SEQS / MAX_NUM_BATCHED_TOKENS (1024 / 8192: vLLM's and pagoda's serving defaults on an
# H200, given explicitly so both servers surely run the same), QUANTIZATION (none; fp8 serves the
# FP8 engine), BUDGET (seconds for the whole script, default 400), HEALTH_WAIT (300),
# SERVE_ONLY (serve_sweep.py --only), SWEEP_RATES (serve_sweep.py --rates).
# stdout: progress lines and serve_sweep.py's JSON lines; OUTDIR: the server's log, each run's
# report and result file, summary.jsonl.
set -u -o pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/sidebyside/lib.sh
. "$HERE/lib.sh"

PORT=${PORT:-8020}
SERVED_NAME=${SERVED_NAME:-l8b}

server_args() {  # MODEL_DIR
  local a=(--model "$1" --served-model-name "$SERVED_NAME" --load-format dummy --dtype bfloat16
           --host 127.0.0.1 --port "$PORT" --gpu-memory-utilization 0.9
           --max-num-seqs "${MAX_NUM_SEQS:-1024}" --max-num-batched-tokens "${MAX_NUM_BATCHED_TOKENS:-8192}"
           --disable-uvicorn-access-log)
  [ -n "${QUANTIZATION:-}" ] && a+=(--quantization "$QUANTIZATION")
  printf '%s\n' "${a[@]}"
}

if [ "${1:-}" = --print-server-args ]; then
  server_args "${2:?--print-server-args MODEL_DIR}"
  exit 0
fi

: "${PAGODA:?PAGODA=the pagoda tool (its bench serve is the client)}"
: "${MODEL_DIR:?MODEL_DIR=config.json + Llama-3 tokenizer files}"
OUTDIR=${OUTDIR:-/tmp/sidebyside/vllm-serve}
BUDGET=${BUDGET:-400}
mkdir -p "$OUTDIR"
for f in config.json tokenizer.json tokenizer_config.json; do
  [ -e "$MODEL_DIR/$f" ] || { echo "vllm_serve.sh: $MODEL_DIR/$f missing"; exit 1; }
done
python3 -c 'import vllm' 2>/dev/null || { echo "vllm_serve.sh: vllm does not import (PYTHONPATH=${PYTHONPATH:-})"; exit 1; }

# The machine has no network: never reach for a hub; FlashInfer is not in the kit.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
       DO_NOT_TRACK=1 VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1

mapfile -t ARGS < <(server_args "$MODEL_DIR")
stamp "vllm serve: python3 -m vllm.entrypoints.openai.api_server ${ARGS[*]}"
# stop_server (the trap: whatever happens) ends it and its engine-core process.
python3 -m vllm.entrypoints.openai.api_server "${ARGS[@]}" > "$OUTDIR/server.log" 2>&1 &
SERVER=$!
trap 'stop_server $SERVER' EXIT
wait_health "$PORT" "$SERVER" "$OUTDIR/server.log" "${HEALTH_WAIT:-300}" || exit 1
stamp "vllm serve: /health 200"
grep -E "non-default args|max_num_seqs|Graph capturing finished|torch.compile took|init engine|GPU KV cache size" \
  "$OUTDIR/server.log" | cut -c1-300 | head -12

rc=0
python3 "$HERE/serve_sweep.py" run --pagoda "$PAGODA" --port "$PORT" --model "$SERVED_NAME" \
  --engine vllm --out "$OUTDIR" --time-budget "$(left "$BUDGET")" \
  ${SERVE_ONLY:+--only "$SERVE_ONLY"} ${SWEEP_RATES:+--rates "$SWEEP_RATES"} \
  | tee -a "$OUTDIR/summary.jsonl" || rc=1
grep -cE "ERROR|Traceback" "$OUTDIR/server.log" | xargs -I{} echo "server log: {} ERROR/Traceback lines"
exit $rc
