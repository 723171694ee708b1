# The command line: `pagoda bench throughput` on the CPU fixture (the report's counts and
# rates); `pagoda generate` given token ids without a usable tokenizer.
SCRIPT_TESTS += %reldir%/test_bench_throughput.sh %reldir%/test_generate_prompt_ids.sh
EXTRA_DIST += %reldir%/test_bench_throughput.sh %reldir%/test_generate_prompt_ids.sh
