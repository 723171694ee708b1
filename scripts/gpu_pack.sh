#!/bin/sh
# Packs a CUDA build for the GPU machine: the source tree, the build directory (no object
# files) and the shared libraries that machine lacks, as one xz tarball of absolute paths,
# so that the build's compiled-in paths (plugins, fixtures, libtool) hold there too.
#   scripts/gpu_pack.sh BUILD_DIR OUT.tar.xz
set -e
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
out=$2
libs="$build/../gpulibs"
rm -rf "$libs" && mkdir -p "$libs"
for l in libcriterion.so.3 libgit2.so.1.5 libhttp_parser.so.2.9 libjansson.so.4 \
         libmbedcrypto.so.7 libmbedtls.so.14 libmbedx509.so.1 libnanomsg.so.5 libopenblas.so.0 \
         libgfortran.so.5 libquadmath.so.0 libpcre2-8.so.0 libssh2.so.1 libxxhash.so.0 \
         libinih.so.1 libutf8proc.so.2 libmicrohttpd.so.12; do
  cp -L "/lib/x86_64-linux-gnu/$l" "$libs/$l"
done
list=$(mktemp)
(cd "$src" && { git ls-files; git ls-files --others --exclude-standard; } | sed "s|^|$src/|") > "$list"
find "$build" -type f ! -name '*.o' ! -name '*.lo' ! -name '*.Po' ! -name '*.Plo' >> "$list"
find "$build" -type l >> "$list"
find "$libs" -type f >> "$list"
tar -cJf "$out" --absolute-names -T "$list"
rm -f "$list"
ls -la "$out"
