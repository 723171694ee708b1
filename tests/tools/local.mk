# The command line: `pagoda bench throughput` on the CPU fixture (the report's counts and rates).
SCRIPT_TESTS += %reldir%/test_bench_throughput.sh
EXTRA_DIST += %reldir%/test_bench_throughput.sh
# `pagoda bench serve` against `pagoda serve` on the CPU fixture (and a faulty fake server).
SCRIPT_TESTS += %reldir%/test_bench_serve.sh
EXTRA_DIST += %reldir%/test_bench_serve.sh
