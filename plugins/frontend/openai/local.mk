# The OpenAI-compatible HTTP frontend (libmicrohttpd + jansson), started by `pagoda serve`.
plugin_LTLIBRARIES += %reldir%/openai.la
%canon_reldir%_openai_la_SOURCES = %reldir%/oai.h %reldir%/plugin.c %reldir%/http.c \
	%reldir%/request.c %reldir%/generate.c %reldir%/util.c %reldir%/listen.c \
	%reldir%/conn.c %reldir%/auth.c $(BASE_PLUGIN_SOURCES)
%canon_reldir%_openai_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MHD_CFLAGS)
%canon_reldir%_openai_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_openai_la_LIBADD = libpagoda.la $(JANSSON_LIBS) $(MHD_LIBS) -lpthread

FRONTEND_PLUGIN_DIRS = $(abs_top_builddir)/%reldir%/.libs
