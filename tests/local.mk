# The tests. tests/lib holds the shared harnesses (compiled once), tests/unit one Criterion
# program per runtime subsystem, tests/gpu the CUDA programs (they exit 77, SKIP, without a
# GPU), tests/http the real server with real clients, tests/tools the command line, and
# tests/fixtures everything they read: the suite runs on a clone of the repository alone.
#
# Criterion is needed by `make check` only: without it the build still succeeds and
# `make check` says what is missing.
TEST_CPPFLAGS = $(AM_CPPFLAGS) -DPGD_TEST_SRCDIR='"$(abs_top_srcdir)"' \
	-DPGD_TEST_BUILDDIR='"$(abs_top_builddir)"'
TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(JANSSON_CFLAGS)
# The tests use internal names, so they link the convenience library; -export-dynamic lets
# the plugins they load (which link libpagoda.so) bind to this program's copy of the runtime.
TEST_LINKFLAGS = $(AM_LDFLAGS) -export-dynamic
TEST_LDADD = tests/lib/libtestlib.la runtime/libpagoda-private.la $(CRITERION_LIBS) \
	$(JANSSON_LIBS) -lpthread -lm

include %reldir%/fixtures/plugins/local.mk
if HAVE_CRITERION
include %reldir%/lib/local.mk
include %reldir%/unit/local.mk
include %reldir%/gpu/local.mk
else
check-local:
	@echo "make check needs Criterion (libcriterion-dev); configure did not find it"; exit 1
endif
include %reldir%/http/local.mk
include %reldir%/dist/local.mk
include %reldir%/tools/local.mk
include %reldir%/hub/local.mk
include %reldir%/repl/local.mk
include %reldir%/fuzz/local.mk

if ENABLE_TSAN
# Criterion cannot run under ThreadSanitizer (Snaipe/Criterion#274): a TSan build runs the
# plain-C threaded tests only.
TESTS += tests/unit/test_engine_tsan
else
TESTS += $(CRITERION_TESTS) tests/unit/test_engine_tsan $(GPU_TEST_BINS) $(SCRIPT_TESTS) \
	$(FUZZ_CORPUS_TESTS)
endif
EXTRA_DIST += %reldir%/fixtures

# Plugins the tests load find each other through the build tree; they stay mapped until
# exit, so LeakSanitizer can scan their globals and name their frames (a dlclosed plugin's
# frames print as <unknown module>).
AM_TESTS_ENVIRONMENT = PAGODA_LOG=warn; export PAGODA_LOG; \
	PAGODA_NO_DLCLOSE=1; export PAGODA_NO_DLCLOSE; \
	PGD_BUILDDIR='$(abs_top_builddir)'; export PGD_BUILDDIR; \
	PGD_SRCDIR='$(abs_top_srcdir)'; export PGD_SRCDIR;
