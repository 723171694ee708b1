# The command line and the build's products: `pagoda bench throughput` on the CPU fixture
# (the report's counts and rates), `pagoda generate` given token ids without a usable
# tokenizer, the export boundary of libpagoda.so and the plugins (nm -D), and the settings
# table: docs/CONFIG.md against `pagoda config --print-doc`, --help, refused flags, --device
# on a machine without a GPU.
TOOL_SCRIPT_TESTS = %reldir%/test_bench_throughput.sh %reldir%/test_generate_prompt_ids.sh \
	%reldir%/test_export_boundary.sh %reldir%/test_config.sh
SCRIPT_TESTS += $(TOOL_SCRIPT_TESTS)
EXTRA_DIST += $(TOOL_SCRIPT_TESTS) tests/lib/harness.sh docs/CONFIG.md
