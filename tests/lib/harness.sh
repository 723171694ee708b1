# The harness of the shell tests (tests/tools): sourced after setting SUITE, it gives
#   BUILDDIR, SRCDIR   the build and source trees (make check exports PGD_BUILDDIR/PGD_SRCDIR)
#   PAGODA             the build's pagoda tool
#   tmp                a temporary directory, removed when the script exits
#   ok NAME / ko NAME WHY   one Criterion-style [PASS]/[FAIL] line each
#   finish             the "[====] Synthesis" line; its status is the script's verdict
#   serve_port PID LOG PATTERN   waits (60 s at most) until the `pagoda serve` of PID
#                      writes PATTERN in its LOG or dies; prints the port it listens on
# e.g.  SUITE=generate_prompt_ids; . "$(dirname "$0")/../lib/harness.sh"
BUILDDIR=${PGD_BUILDDIR:-$(pwd)}
SRCDIR=${PGD_SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PAGODA="$BUILDDIR/tools/pagoda"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "[PASS] $SUITE::$1"; }
ko() { fail=$((fail + 1)); echo "[FAIL] $SUITE::$1: $2"; }
finish() {
  echo "[====] Synthesis: Tested: $((pass + fail)) | Passing: $pass | Failing: $fail | Crashing: 0"
  [ "$fail" -eq 0 ]
}
serve_port() {
  for _ in $(seq 1 600); do
    grep -q "$3" "$2" && break
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$2" | head -n1
}
