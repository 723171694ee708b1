# The shared test harnesses, compiled once: fixture models and engines, their references,
# running a command and keeping its output.
check_LTLIBRARIES += tests/lib/libtestlib.la
tests_lib_libtestlib_la_SOURCES = %reldir%/model_fixture.c %reldir%/model_fixture.h \
	%reldir%/capture.c %reldir%/capture.h \
	%reldir%/engine_fixture.h %reldir%/async_pair.h %reldir%/test_common.h %reldir%/gpu_main.h \
	%reldir%/gpu_kernel_test.h
tests_lib_libtestlib_la_CPPFLAGS = $(TEST_CPPFLAGS)
tests_lib_libtestlib_la_CFLAGS = $(TEST_CFLAGS)
EXTRA_DIST += %reldir%/http_harness.py %reldir%/raw_http.py
