# The `pagoda` command line. It links the runtime's convenience library (the benchmarks
# drive the runner and the kernels directly) and exports it to the plugins it loads.
bin_PROGRAMS += tools/pagoda
tools_pagoda_SOURCES = %reldir%/pagoda.c %reldir%/commands.h \
	%reldir%/cmd_generate.c %reldir%/generate_requests.c %reldir%/generate_requests.h \
	%reldir%/cmd_serve.c %reldir%/serve_stats.c %reldir%/serve_stats.h %reldir%/cmd_config.c \
	%reldir%/cmd_chat.c %reldir%/model_chat.c %reldir%/cmd_plugins.c %reldir%/cmd_tokenize.c \
	%reldir%/cmd_chat_template.c %reldir%/cmd_fetch.c %reldir%/cmd_models.c \
	%reldir%/spec_model.c %reldir%/tp_worker.c %reldir%/tool_model.c \
	%reldir%/tool_model.h
tools_pagoda_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CURL_CFLAGS)
tools_pagoda_LDFLAGS = $(AM_LDFLAGS) -export-dynamic
tools_pagoda_LDADD = runtime/libpagoda-private.la $(JANSSON_LIBS) $(CURL_LIBS)

include %reldir%/bench/local.mk
include %reldir%/ktrace/local.mk
