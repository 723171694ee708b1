#!/bin/sh
# Installs the system packages pagoda builds and tests with (Debian 12 / Ubuntu 22.04+).
# Run as root or with sudo available. The CUDA toolkit is optional and not installed here.
# clang and its runtime libraries (libFuzzer) build the fuzz targets: configure
# --enable-fuzzing CC=clang. systemd brings systemd-analyze, which checks the example unit.
# Open MPI (libopenmpi-dev, openmpi-bin: mpicc, mpirun) builds and tests tensor parallelism
# (--with-mpi, tests/dist).
set -e
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PACKAGES="build-essential autoconf automake libtool pkg-config git python3 python3-pip curl tmux
  libinih-dev libedit-dev libcurl4-openssl-dev libssl-dev libxxhash-dev libcriterion-dev libjansson-dev libpcre2-dev
  libutf8proc-dev libmicrohttpd-dev libopenblas-dev clang libclang-rt-dev systemd
  libopenmpi-dev openmpi-bin"
missing=
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# Python packages the test suite drives the server with (the official openai client).
req="$(dirname "$0")/requirements-test.txt"
if [ -f "$req" ] && ! python3 -c 'import openai, huggingface_hub, yaml' 2>/dev/null; then
  python3 -m pip install -q -r "$req" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages -r "$req"
fi
