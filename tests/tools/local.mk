# The command line: `pagoda bench throughput` on the CPU fixture (the report's counts and rates).
SCRIPT_TESTS += %reldir%/test_bench_throughput.sh
EXTRA_DIST += %reldir%/test_bench_throughput.sh
# The settings table: docs/CONFIG.md against `pagoda config --print-doc`, --help, refused
# flags, --device on a machine without a GPU.
SCRIPT_TESTS += %reldir%/test_config.sh
EXTRA_DIST += %reldir%/test_config.sh docs/CONFIG.md
