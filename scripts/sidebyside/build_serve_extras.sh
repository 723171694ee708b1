#!/usr/bin/env bash
# Builds the extra part of the vLLM kit that vLLM's OpenAI server needs: the Python packages
# `python3 -m vllm.entrypoints.openai.api_server` imports that neither the kit
# (../shared/vllm-kit/build_kit.sh) nor the GPU machine has. Writes into OUT (the kit's folder):
#   serve.tar.xz        those packages as one flat site tree (unpack it beside the kit's parts)
#   bench_vllm.py, sharegpt_lengths.py   the kit's helpers, so that the folder that travels to
#                       the GPU machine holds everything scripts/sidebyside/ reads there
#   SERVE.SHA256SUMS    checksums of the three
#
#   OUT=$PWD/.kit/vllm bash scripts/sidebyside/build_serve_extras.sh
#
# Needs python3 with pip (reaching the package registry), tar, xz, sha256sum. Env: OUT (default
# ./.kit/vllm), KIT (the kit's recipe folder, default ../shared/vllm-kit beside the checkout),
# WORK (scratch, default /tmp/vllm_serve_extras), PY (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$PWD/.kit/vllm}"
KIT="${KIT:-$REPO/../shared/vllm-kit}"
WORK="${WORK:-/tmp/vllm_serve_extras}"
PY="${PY:-python3}"

# What the server imports that is missing (static_imports.py on vllm.entrypoints.openai.api_server,
# then an import test and build_app() with kit + these on PYTHONPATH). Versions: the newest
# release on 2026-07-26, as the kit's own pins (uv pip compile --exclude-newer 2026-07-26).
PINS=(
  uvicorn==0.51.0                           # vllm.entrypoints.launcher: the HTTP server itself
  watchfiles==1.2.0                         # vllm.entrypoints.serve.utils.ssl (certificate reload)
  model-hosting-container-standards==0.1.16 # vllm.entrypoints.serve.sagemaker.api_router
  jmespath==1.1.0                           #   its one import beyond fastapi/pydantic/starlette
  python-multipart==0.0.32                  # FastAPI's form parsing (file-upload routes)
)
# Not shipped on purpose: supervisor (a requirement of model-hosting-container-standards that
# only its supervisord config generator names, never imported by vLLM), uvicorn's optional
# httptools/websockets (uvicorn falls back to h11, which the GPU machine has), and the server
# extras vLLM imports lazily for features this benchmark does not use (anthropic, mcp,
# opentelemetry).

[ -f "$KIT/kit_tools.py" ] || { echo "no kit recipe in $KIT (set KIT=)" >&2; exit 1; }
[ -d "$OUT" ] || { echo "no kit in $OUT: build it first (build_kit.sh), or set OUT=" >&2; exit 1; }

rm -rf "$WORK" && mkdir -p "$WORK/wheels"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$WORK/wheels" "${PINS[@]}" >&2
"$PY" "$KIT/kit_tools.py" unpack "$WORK/site" "$WORK"/wheels/*.whl >&2
find "$WORK/site" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$WORK/site" -name '*.pyi' -delete

# a flat tree (package dirs and *.dist-info at the root), reproducible member order and metadata
find "$WORK/site" -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort > "$WORK/toplevel.txt"
tar -C "$WORK/site" --sort=name --owner=0 --group=0 --numeric-owner --mtime='2026-07-25 00:00:00Z' \
    -cf - -T "$WORK/toplevel.txt" | xz -9e -c > "$OUT/serve.tar.xz"
install -m 0644 "$KIT/bench_vllm.py" "$KIT/sharegpt_lengths.py" "$OUT/"
( cd "$OUT" && sha256sum serve.tar.xz bench_vllm.py sharegpt_lengths.py > SERVE.SHA256SUMS )
ls -l "$OUT" >&2
echo "kit + extras: $(cat "$OUT"/part* "$OUT"/serve.tar.xz "$OUT"/*.py | wc -c) bytes" >&2
