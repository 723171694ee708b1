# The `pagoda` command line. It links the runtime's convenience library (the benchmarks
# drive the runner and the kernels directly) and exports it to the plugins it loads.
bin_PROGRAMS += tools/pagoda
tools_pagoda_SOURCES = %reldir%/pagoda.c %reldir%/commands.h \
	%reldir%/cmd_generate.c %reldir%/generate_requests.c %reldir%/generate_requests.h \
	%reldir%/cmd_serve.c %reldir%/cmd_plugins.c %reldir%/cmd_tokenize.c \
	%reldir%/cmd_chat_template.c %reldir%/cmd_bench.c %reldir%/cmd_bench_throughput.c \
	%reldir%/cmd_bench_gemv.c %reldir%/cmd_bench_attention.c \
	%reldir%/cmd_fetch.c %reldir%/cmd_models.c %reldir%/serve_stats.c \
	%reldir%/serve_stats.h %reldir%/cmd_config.c %reldir%/cmd_chat.c %reldir%/model_chat.c \
	%reldir%/bench_draw.c %reldir%/bench_draw.h %reldir%/cmd_bench_serve.c \
	%reldir%/bench_serve/conn.c %reldir%/bench_serve/conn.h \
	%reldir%/bench_serve/dataset.c %reldir%/bench_serve/dataset.h \
	%reldir%/bench_serve/driver.c %reldir%/bench_serve/driver.h \
	%reldir%/bench_serve/report.c %reldir%/bench_serve/report.h \
	%reldir%/bench_serve/sse.c %reldir%/bench_serve/sse.h
tools_pagoda_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS)
tools_pagoda_LDFLAGS = $(AM_LDFLAGS) -export-dynamic
tools_pagoda_LDADD = runtime/libpagoda-private.la $(JANSSON_LIBS) $(CURL_LIBS)

# A benchmark program (not a test): tools/bench_tokenizer --model DIR --file TEXT
noinst_PROGRAMS += tools/bench_tokenizer
tools_bench_tokenizer_SOURCES = %reldir%/bench_tokenizer.c
tools_bench_tokenizer_LDADD = runtime/libpagoda-private.la
