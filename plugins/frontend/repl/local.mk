# The terminal chat frontend (libedit + libcurl + jansson), started by `pagoda chat`. It
# reads SSE with `pagoda bench serve`'s parser (runtime/base/sse.c; one parser).
plugin_LTLIBRARIES += %reldir%/repl.la
%canon_reldir%_repl_la_SOURCES = %reldir%/repl.h %reldir%/plugin.c %reldir%/repl.c \
	%reldir%/turn.c %reldir%/conv.c %reldir%/backend_engine.c %reldir%/backend_http.c \
	runtime/base/sse.c runtime/base/sse.h $(BASE_PLUGIN_SOURCES)
%canon_reldir%_repl_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(LIBEDIT_CFLAGS) $(CURL_CFLAGS)
%canon_reldir%_repl_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_repl_la_LIBADD = libpagoda.la $(JANSSON_LIBS) $(LIBEDIT_LIBS) $(CURL_LIBS) -lm
REPL_PLUGIN_DIRS = $(abs_top_builddir)/%reldir%/.libs
