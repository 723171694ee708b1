# The hub client: `pagoda fetch` and `pagoda models` against a mock hub (a hub and a CDN on
# loopback ports, mock_hub.py), hub ids and catalog names where a model is named
# (test_hub_resolve.py), and interoperability with the huggingface_hub package
# (scripts/requirements-test.txt) in both directions; test_smollm2_greedy.py runs only with
# PAGODA_SMOLLM2_DIR set (scripts/smollm2_to_hf.py) and SKIPs otherwise.
HUB_TESTS = %reldir%/test_hub_fetch.py %reldir%/test_hub_interop.py \
	%reldir%/test_hub_resolve.py \
	%reldir%/test_smollm2_greedy.py
SCRIPT_TESTS += $(HUB_TESTS)
EXTRA_DIST += $(HUB_TESTS) %reldir%/mock_hub.py
if HAVE_CRITERION
# The network-free pieces (names, globs, retry waits, settings, cache files) in Criterion.
CRITERION_TESTS += tests/hub/test_hub_cache
check_PROGRAMS += tests/hub/test_hub_cache
tests_hub_test_hub_cache_SOURCES = %reldir%/test_hub_cache.c
tests_hub_test_hub_cache_CPPFLAGS = $(TEST_CPPFLAGS)
tests_hub_test_hub_cache_CFLAGS = $(TEST_CFLAGS) $(CURL_CFLAGS)
tests_hub_test_hub_cache_LDFLAGS = $(TEST_LINKFLAGS)
tests_hub_test_hub_cache_LDADD = $(TEST_LDADD) $(CURL_LIBS)
endif
