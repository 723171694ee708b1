# The command line and the build's products: `pagoda bench throughput` on the CPU fixture
# (the report's counts and rates), `pagoda generate` given token ids without a usable
# tokenizer, and the export boundary of libpagoda.so and the plugins (nm -D).
TOOL_SCRIPT_TESTS = %reldir%/test_bench_throughput.sh %reldir%/test_generate_prompt_ids.sh \
	%reldir%/test_export_boundary.sh
SCRIPT_TESTS += $(TOOL_SCRIPT_TESTS)
EXTRA_DIST += $(TOOL_SCRIPT_TESTS) tests/lib/harness.sh
