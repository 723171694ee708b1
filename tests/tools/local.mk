# The command line: `pagoda bench throughput` on the CPU fixture (the report's counts and rates).
SCRIPT_TESTS += %reldir%/test_bench_throughput.sh
EXTRA_DIST += %reldir%/test_bench_throughput.sh
