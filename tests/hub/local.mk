# The hub client: `pagoda fetch` and `pagoda models` against a mock hub (a hub and a CDN on
# loopback ports, mock_hub.py), and interoperability with the huggingface_hub package
# (scripts/requirements-test.txt) in both directions.
HUB_TESTS = %reldir%/test_hub_fetch.py %reldir%/test_hub_interop.py
SCRIPT_TESTS += $(HUB_TESTS)
EXTRA_DIST += $(HUB_TESTS) %reldir%/mock_hub.py
