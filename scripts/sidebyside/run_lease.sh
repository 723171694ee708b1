#!/bin/bash
# The GPU machine's entry for the side-by-side runs, one PART per device call (each fits in 9
# minutes), from the repository root:
#
#   bash scripts/sidebyside/run_lease.sh PART
#
#   PART            what                                                      needs there
#   pagoda-offline  pagoda_all.sh offline (~6.5 min)                          the pagoda build (*)
#   pagoda-serve    pagoda_all.sh serve (~4 min)                              the build, the tokenizer (**)
#   pagoda          both in one call, within the budget (~10 min planned: the serving sweep's
#                   last rates get skipped; prefer the two calls above)       the build, the tokenizer
#   vllm-offline    vllm_offline.py, bf16, every offline workload (~7.5 min)  .kit/vllm
#   vllm-fp8-serve  vllm_offline.py --fp8 (~2.5 min), then vllm_serve.sh (~4.5 min)
#                                                                             .kit/vllm, the build, the tokenizer
#   vllm-fp8, vllm-serve   each half of the above alone
#
# (*) The pagoda build: $B/tools/pagoda already unpacked on this machine by an earlier call of
#     the lease, or .carry/bundle.tar.xz (scripts/gpu_pack.sh) to unpack, as .carry/runB.sh does:
#     the bundle's absolute paths under /work/main, a link to this checkout. vllm-*-serve needs it
#     for the client (`pagoda bench serve`).
# (**) The tokenizer: .carry/llama3/ (tokenizer.json.xz or tokenizer.json, tokenizer_config.json;
#     TOKENIZER_DIR= to name another folder), or /tmp/sidebyside/l8b/ left by an earlier call.
# The vLLM kit: .kit/vllm (build_kit.sh, then build_serve_extras.sh), unpacked once per machine
# into /tmp/vllm-site.
#
# Logs: $OUT/sidebyside_PART.jsonl (the JSON lines of every workload) and
# $OUT/sidebyside_PART.tgz (every report and server log). Env: PART_BUDGET (seconds, default
# 530), VLLM_ONLY (vllm_offline.py's --only: workload names, comma-separated), WT
# (/work/main), B ($WT/_build/g90), VLLM_KIT, VLLM_SITE, TOKENIZER_DIR, and what
# pagoda_all.sh / vllm_serve.sh / vllm_offline.py take.
set -u -o pipefail
PART=${1:?usage: run_lease.sh pagoda|pagoda-offline|pagoda-serve|vllm-offline|vllm-fp8-serve|vllm-fp8|vllm-serve}
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SIDE_T0=$(date +%s)
export SIDE_T0
# shellcheck source=scripts/sidebyside/lib.sh
. "$HERE/lib.sh"

PART_BUDGET=${PART_BUDGET:-530}
export WT=${WT:-/work/main}
export B=${B:-$WT/_build/g90}
CONFIG=$REPO/scripts/configs/llama-3-8b/config.json
MODEL_DIR=/tmp/sidebyside/l8b
LOGS=/tmp/sidebyside/logs-$PART
OUT_REAL=${OUT:-/tmp/sidebyside/out}
rm -rf "$LOGS" && mkdir -p "$LOGS" "$OUT_REAL"
exec > >(tee "$LOGS/run_lease.log") 2>&1

# shellcheck disable=SC2317 # run by the EXIT trap
pack() {
  [ -e "$LOGS/summary.jsonl" ] && cp "$LOGS/summary.jsonl" "$OUT_REAL/sidebyside_$PART.jsonl"
  tar czf "$OUT_REAL/sidebyside_$PART.tgz" -C "$LOGS" .
}
trap pack EXIT

# The pagoda build and the library path its binaries need (as .carry/runB.sh sets them).
setup_pagoda() {
  mkdir -p /work && { [ -e /work/main ] || ln -s "$REPO" /work/main; }
  if [ ! -x "$B/tools/pagoda" ]; then
    [ -e "$REPO/.carry/bundle.tar.xz" ] || { stamp "no pagoda build at $B and no .carry/bundle.tar.xz to unpack"; return 1; }
    stamp "unpacking .carry/bundle.tar.xz"
    BUNDLE=$REPO/.carry/bundle.tar.xz OUT=$LOGS TESTS=0 BENCH=0 bash "$REPO/scripts/gpu_check.sh" > "$LOGS/setup.log" 2>&1
    [ -x "$B/tools/pagoda" ] || { stamp "the bundle holds no $B/tools/pagoda"; tail -n 5 "$LOGS/setup.log"; return 1; }
  fi
  local cache=/tmp/sidebyside/ldpath d n
  if [ ! -s "$cache" ]; then
    d=$(dirname "$(find / -name 'libcublasLt.so.13' -not -path '/proc/*' 2>/dev/null | head -n 1)")
    n=$(find / -name 'libnccl.so.2*' -not -path '/proc/*' 2>/dev/null | head -n 1)
    echo "$d${n:+:$(dirname "$n")}" > "$cache"
  fi
  LD_LIBRARY_PATH=$B/.libs:$WT/_build/gpulibs:$(cat "$cache")
  export LD_LIBRARY_PATH
  # The bundle's curl: the machine's own (Ubuntu's) fails against the bundle's libcurl that
  # LD_LIBRARY_PATH now puts first ("undefined symbol: curl_global_trace").
  if [ -x "$WT/_build/gpulibs/bin/curl" ]; then export PATH=$WT/_build/gpulibs/bin:$PATH
  else command -v curl >/dev/null || export PATH=$REPO/.carry/bin:$PATH; fi
  export PAGODA=$B/tools/pagoda
  "$PAGODA" --version 2>/dev/null | head -n 1
}

# The vLLM kit, unpacked once per machine (a stamp of its checksums says which kit is there).
setup_vllm() {
  export VLLM_KIT=${VLLM_KIT:-$REPO/.kit/vllm}
  local site=${VLLM_SITE:-/tmp/vllm-site} sums
  if [ ! -e "$VLLM_KIT/SHA256SUMS" ] || [ ! -e "$VLLM_KIT/SERVE.SHA256SUMS" ]; then
    stamp "no kit in $VLLM_KIT (build_kit.sh + build_serve_extras.sh; carry .kit/vllm)"; return 1
  fi
  sums=$(cat "$VLLM_KIT/SHA256SUMS" "$VLLM_KIT/SERVE.SHA256SUMS" | sha256sum | cut -c1-16)
  if [ "$(cat "$site/.sidebyside-kit" 2>/dev/null)" != "$sums" ]; then
    stamp "unpacking the vLLM kit into $site"
    (cd "$VLLM_KIT" && sha256sum -c --quiet SHA256SUMS && sha256sum -c --quiet SERVE.SHA256SUMS) || return 1
    rm -rf "$site" && mkdir -p "$site"
    cat "$VLLM_KIT"/part0* | xz -dc | tar x -C "$site" || return 1
    xz -dc "$VLLM_KIT/serve.tar.xz" | tar x -C "$site" || return 1
    echo "$sums" > "$site/.sidebyside-kit"
  fi
  export PYTHONPATH=$site
  python3 -c 'import sys, torch, vllm; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, vllm {vllm.__version__}")'
}

# MODEL_DIR for the servers: the 8B config and Llama-3's tokenizer.
setup_model_dir() {
  local tok=${TOKENIZER_DIR:-$REPO/.carry/llama3}
  mkdir -p "$MODEL_DIR" && cp "$CONFIG" "$MODEL_DIR/config.json"
  if [ -e "$tok/tokenizer.json.xz" ]; then xz -dc "$tok/tokenizer.json.xz" > "$MODEL_DIR/tokenizer.json"
  elif [ -e "$tok/tokenizer.json" ]; then cp "$tok/tokenizer.json" "$MODEL_DIR/"; fi
  [ -e "$tok/tokenizer_config.json" ] && cp "$tok/tokenizer_config.json" "$MODEL_DIR/"
  [ -s "$MODEL_DIR/tokenizer.json" ] && [ -e "$MODEL_DIR/tokenizer_config.json" ] && return 0
  stamp "no tokenizer: carry .carry/llama3 (or set TOKENIZER_DIR), or run a part that has it first on this machine"
  return 1
}

vllm_offline() {  # [--fp8] BUDGET_S
  local fp8=()
  [ "$1" = --fp8 ] && { fp8=(--fp8); shift; }
  stamp "vllm_offline.py ${fp8[*]} (time budget $1 s)"
  timeout "$(( $1 + 20 ))" python3 "$HERE/vllm_offline.py" --kit "$VLLM_KIT" "${fp8[@]}" --time-budget "$1" \
    ${VLLM_ONLY:+--only "$VLLM_ONLY"} \
    --out "$LOGS/summary.jsonl" 2> "$LOGS/vllm_offline${fp8[*]:+_fp8}.log" || status=1
  grep -E "Traceback|Error" "$LOGS/vllm_offline${fp8[*]:+_fp8}.log" | head -n 5
}

vllm_serve() {
  stamp "vllm_serve.sh"
  MODEL_DIR=$MODEL_DIR OUTDIR=$LOGS/vllm-serve BUDGET=$PART_BUDGET bash "$HERE/vllm_serve.sh" || status=1
  [ -e "$LOGS/vllm-serve/summary.jsonl" ] && cat "$LOGS/vllm-serve/summary.jsonl" >> "$LOGS/summary.jsonl"
}

pagoda_all() {  # offline|serve|all
  MODEL_DIR=$MODEL_DIR OUTDIR=$LOGS/pagoda BUDGET=$PART_BUDGET bash "$HERE/pagoda_all.sh" "$1" || status=1
  [ -e "$LOGS/pagoda/summary.jsonl" ] && cat "$LOGS/pagoda/summary.jsonl" >> "$LOGS/summary.jsonl"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
stamp "run_lease.sh $PART (budget $PART_BUDGET s)"
status=0
case "$PART" in
  pagoda)         setup_pagoda && setup_model_dir && pagoda_all all || status=1 ;;
  pagoda-offline) setup_pagoda && pagoda_all offline || status=1 ;;
  pagoda-serve)   setup_pagoda && setup_model_dir && pagoda_all serve || status=1 ;;
  vllm-offline)   setup_vllm && vllm_offline "$(( $(left "$PART_BUDGET") - 15 ))" || status=1 ;;
  vllm-fp8)       setup_vllm && vllm_offline --fp8 "$(( $(left "$PART_BUDGET") - 15 ))" || status=1 ;;
  vllm-serve)     setup_vllm && setup_pagoda && setup_model_dir && vllm_serve || status=1 ;;
  vllm-fp8-serve)
    if setup_vllm; then
      # the serving half needs the client and the tokenizer: found out first, run the FP8 half anyway
      serve_ready=0; setup_pagoda && setup_model_dir && serve_ready=1
      vllm_offline --fp8 "${FP8_BUDGET:-210}"
      if [ $serve_ready = 1 ]; then vllm_serve; else status=1; fi
    else status=1; fi ;;
  *) echo "run_lease.sh: unknown PART $PART"; exit 2 ;;
esac
stamp "run_lease.sh $PART done (status $status)"
[ -e "$LOGS/summary.jsonl" ] && python3 "$HERE/summarize.py" table "$LOGS/summary.jsonl"
exit $status
