# The HTTP frontend: scripts that start `pagoda serve` on a free loopback port and talk to it
# with the openai package, curl and raw sockets (scripts/requirements-test.txt).
HTTP_TESTS = %reldir%/test_http_openai.py %reldir%/test_http_curl.sh \
	%reldir%/test_http_badinput.py %reldir%/test_http_load.py \
	%reldir%/test_http_shutdown.py %reldir%/test_http_sockets.py %reldir%/test_http_auth.py \
	%reldir%/test_http_limits.py %reldir%/test_http_write_timeout.py \
	%reldir%/test_http_torture.py %reldir%/test_http_serve.py %reldir%/test_http_reload.py \
	%reldir%/test_http_fields.py %reldir%/test_http_structured.py \
	%reldir%/test_http_embeddings.py
SCRIPT_TESTS = $(HTTP_TESTS)
EXTRA_DIST += $(HTTP_TESTS)
