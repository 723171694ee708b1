#!/usr/bin/env bash
# The export boundary: libpagoda.so's dynamic symbol table holds the public API of
# include/pagoda and nothing else: no internal pgd__ name, nothing C++-mangled (_Z...), no
# name outside pgd_, and every name declared in a public header. Each plugin the build
# makes (models/, plugins/) exports pagoda_plugin_init alone. .ci/run runs this on its main
# build too. Prints a Criterion-style synthesis line.
set -u
SUITE=export_boundary
. "$(dirname "$0")/../lib/harness.sh"
NM=${NM:-nm}

lib="$BUILDDIR/.libs/libpagoda.so"
if ! names=$("$NM" -D --defined-only "$lib" 2>&1 | awk 'NF >= 3 { print $3 }'); then
  ko nm "$names"
elif [ -z "$names" ]; then
  ko nm "$lib exports nothing"
else
  ok nm
  # Sanitizer runtimes define their own interface symbols in an instrumented build.
  names=$(grep -Ev '^(__(asan|lsan|ubsan|sanitizer|tsan)_|_(init|fini)$)' <<<"$names")
  bad=$(grep -E '^pgd__' <<<"$names" | head -n 10)
  if [ -z "$bad" ]; then ok no_internal_names; else ko no_internal_names "$(tr '\n' ' ' <<<"$bad")"; fi
  bad=$(grep -E '^_Z' <<<"$names" | head -n 10)
  if [ -z "$bad" ]; then ok no_cxx_mangled_names; else ko no_cxx_mangled_names "$(tr '\n' ' ' <<<"$bad")"; fi
  bad=$(grep -Ev '^pgd_' <<<"$names" | head -n 10)
  if [ -z "$bad" ]; then ok only_pgd_names; else ko only_pgd_names "$(tr '\n' ' ' <<<"$bad")"; fi
  # Every exported function is declared (followed by its parameter list) in include/pagoda.
  declared=$(cat "$SRCDIR"/include/pagoda/*.h | grep -oE '\bpgd_[a-z0-9_]+\(' | tr -d '(' | sort -u)
  bad=$(comm -23 <(grep -E '^pgd_' <<<"$names" | sort -u) <(echo "$declared") | head -n 10)
  if [ -z "$bad" ]; then ok only_public_api; else ko only_public_api "not in include/pagoda: $(tr '\n' ' ' <<<"$bad")"; fi
fi

plugins=$(find "$BUILDDIR/models" "$BUILDDIR/plugins" -path '*/.libs/*.so' 2>/dev/null | sort)
if [ -z "$plugins" ]; then ko plugins "no plugin built under $BUILDDIR/models or plugins"; fi
for so in $plugins; do
  got=$("$NM" -D --defined-only "$so" | awk 'NF >= 3 { print $3 }' |
        grep -Ev '^(__(asan|lsan|ubsan|sanitizer|tsan)_|_(init|fini)$)' | tr '\n' ' ')
  name=$(basename "$so" .so)
  if [ "$got" = "pagoda_plugin_init " ]; then ok "plugin_$name"; else ko "plugin_$name" "exports: $got"; fi
done
finish
