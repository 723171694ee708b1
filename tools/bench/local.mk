# `pagoda bench`: latency and throughput through the engine, the kernels alone (GEMV,
# attention), and `bench serve`, a client for any OpenAI-compatible server (serve/).
tools_pagoda_SOURCES += %reldir%/cmd_bench.c %reldir%/cmd_bench_throughput.c \
	%reldir%/cmd_bench_sched.c \
	%reldir%/cmd_bench_gemv.c %reldir%/cmd_bench_quant.c %reldir%/cmd_bench_attention.c \
	%reldir%/cmd_bench_serve.c %reldir%/cmd_bench_spec.c %reldir%/bench_spec_prompts.c \
	%reldir%/bench_spec_prompts.h %reldir%/cmd_bench_grammar.c \
	%reldir%/cmd_bench_allreduce.c \
	%reldir%/cmd_bench_gemm.c %reldir%/bench_common.h %reldir%/bench_list.c \
	%reldir%/bench_gpu.c \
	%reldir%/bench_draw.c %reldir%/bench_draw.h \
	%reldir%/bench_engine_flags.c %reldir%/bench_engine_flags.h \
	%reldir%/cmd_bench_latency_e2e.c \
	%reldir%/bench_workload.c %reldir%/bench_workload.h \
	%reldir%/bench_latency_profile.c %reldir%/bench_latency_profile.h \
	%reldir%/bench_workload_profile.c %reldir%/bench_workload_profile.h \
	%reldir%/serve/conn.c %reldir%/serve/conn.h %reldir%/serve/dataset.c \
	%reldir%/serve/dataset.h %reldir%/serve/driver.c %reldir%/serve/driver.h \
	%reldir%/serve/report.c %reldir%/serve/report.h \
	%reldir%/serve/structured.c %reldir%/serve/structured.h \
	%reldir%/serve/server_steps.c %reldir%/serve/server_steps.h

# A benchmark program (not a test): tools/bench/bench_tokenizer --model DIR --file TEXT
noinst_PROGRAMS += %reldir%/bench_tokenizer
%canon_reldir%_bench_tokenizer_SOURCES = %reldir%/bench_tokenizer.c
%canon_reldir%_bench_tokenizer_LDADD = runtime/libpagoda-private.la

# The text prompt sets of `pagoda bench spec --prompts` (docs/PERFORMANCE.md's SmolLM2 figures).
EXTRA_DIST += %reldir%/spec_prompts.json
