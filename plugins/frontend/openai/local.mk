# The OpenAI-compatible HTTP frontend (libmicrohttpd + jansson), started by `pagoda serve`.
plugin_LTLIBRARIES += %reldir%/openai.la
# Request decoding (no socket) and the server around it: the fuzz targets build from the
# same two lists (tests/fuzz/local.mk).
OPENAI_REQUEST_SOURCES = %reldir%/oai.h %reldir%/request.c %reldir%/util.c \
	%reldir%/chat.c %reldir%/fields.c %reldir%/guide.c %reldir%/parsers.c %reldir%/parsers.h
OPENAI_SERVER_SOURCES = %reldir%/plugin.c %reldir%/http.c %reldir%/generate.c \
	%reldir%/listen.c %reldir%/conn.c %reldir%/auth.c %reldir%/responses.c \
	%reldir%/embeddings.c %reldir%/gen.h
%canon_reldir%_openai_la_SOURCES = $(OPENAI_REQUEST_SOURCES) $(OPENAI_SERVER_SOURCES) \
	$(BASE_PLUGIN_SOURCES)
%canon_reldir%_openai_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MHD_CFLAGS)
%canon_reldir%_openai_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_openai_la_LIBADD = libpagoda.la $(JANSSON_LIBS) $(MHD_LIBS) -lpthread

FRONTEND_PLUGIN_DIRS = $(abs_top_builddir)/%reldir%/.libs
