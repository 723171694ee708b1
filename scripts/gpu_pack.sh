#!/bin/sh
# Packs a CUDA build for the GPU machine: the source tree, the build directory (no object
# files) and the shared libraries that machine lacks, as one xz tarball of absolute paths,
# so that the build's compiled-in paths (plugins, fixtures, libtool) hold there too.
#   [PACK_SOURCES=0] scripts/gpu_pack.sh BUILD_DIR OUT.tar.xz
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out=$2
libs="$build/../gpulibs"
rm -rf "$libs" && mkdir -p "$libs"
# Every library the tool, the library, the plugins and the tests (Criterion: whichever GPU
# test programs were built, `make check-gpu` builds them all) load from the system's library
# folder, but glibc, the C++ runtime and CUDA's own (the GPU machine has newer ones of those).
for f in "$build"/tools/pagoda "$build"/.libs/libpagoda.so "$build"/plugins/frontend/*/.libs/*.so \
         "$build"/tests/unit/test_engine "$build"/tests/gpu/test_cuda_* "$libs/bin/curl"; do
  case $f in *.o) continue ;; esac
  [ -e "$f" ] && ldd "$f"
done | awk '$3 ~ /^\/(usr\/)?lib\/x86_64-linux-gnu\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt)\.so' |
  while read -r l; do cp -L "$l" "$libs/$(basename "$l")"; done
# curl for the serving checks (the GPU machine's image may lack it); its libraries join
# the others through the ldd pass below.
mkdir -p "$libs/bin" && cp -L "$(command -v curl)" "$libs/bin/curl"
list=$(mktemp)
# PACK_SOURCES=0 leaves the source tree out (the device tool sends the checkout itself; link
# it to the path the build was configured from there).
if [ "${PACK_SOURCES:-1}" = 1 ]; then
  (cd "$src" && { git ls-files; git ls-files --others --exclude-standard; } | sed "s|^|$src/|") > "$list"
else
  : > "$list"
fi
# The CPU-only test programs (unit, fuzz, hub, tools, repl, dist) never run there: left out,
# which keeps the bundle and the checkout it travels with under the device's 64 MiB.
# Static archives (libpagoda-private.a) only serve linking here: left out too.
find "$build" -type f ! -name '*.o' ! -name '*.lo' ! -name '*.a' ! -name '*.Po' ! -name '*.Plo' \
     ! -path "$build/tests/unit/*" ! -path "$build/tests/fuzz/*" ! -path "$build/tests/hub/*" \
     ! -path "$build/tests/tools/*" ! -path "$build/tests/repl/*" ! -path "$build/tests/dist/*" \
     >> "$list"
find "$build" -type l >> "$list"
find "$libs" -type f >> "$list"
# xz -9's 64 MiB window: each GPU test program links the library's ~30 MB of code statically,
# and a window that spans two of them stores the second as references (41 MB -> 22 MB).
XZ_OPT=${XZ_OPT:--9 -T2} tar -cJf "$out" --absolute-names -T "$list"
rm -f "$list"
ls -la "$out"
