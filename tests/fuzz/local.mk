# Fuzz targets: one file each (fuzz.h says how they are built and run).
#
#   tests/fuzz/test_fuzz_<target>   every build: replays tests/fuzz/corpus/<target>/ once
#                                   (corpus_main.c), run by `make check`
#   tests/fuzz/fuzz_<target>        configure --enable-fuzzing only (clang): the libFuzzer
#                                   program, e.g. `fuzz_request -max_total_time=60
#                                   tests/fuzz/corpus/request`
#
# The request and http targets compile the OpenAI frontend's sources in (a plugin is a
# module, not a library to link); http also runs an engine, whose plugins bind to this
# program's runtime (-export-dynamic, as the tests do).
FUZZ_CORPUS_TESTS = tests/fuzz/test_fuzz_request tests/fuzz/test_fuzz_http \
	tests/fuzz/test_fuzz_tokenizer tests/fuzz/test_fuzz_chat_template \
	tests/fuzz/test_fuzz_safetensors tests/fuzz/test_fuzz_tokenizer_json \
	tests/fuzz/test_fuzz_grammar
check_PROGRAMS += $(FUZZ_CORPUS_TESTS)
if ENABLE_FUZZING
noinst_PROGRAMS += tests/fuzz/fuzz_request tests/fuzz/fuzz_http tests/fuzz/fuzz_tokenizer \
	tests/fuzz/fuzz_chat_template tests/fuzz/fuzz_safetensors tests/fuzz/fuzz_tokenizer_json \
	tests/fuzz/fuzz_grammar
endif
EXTRA_DIST += %reldir%/corpus %reldir%/README.md

FUZZ_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(MHD_CFLAGS) $(UTF8PROC_CFLAGS)
FUZZ_LDADD = runtime/libpagoda-private.la $(JANSSON_LIBS) $(MHD_LIBS) $(UTF8PROC_LIBS) \
	-lpthread -lm
FUZZ_OAI_SOURCES = $(OPENAI_REQUEST_SOURCES) %reldir%/fuzz_fixture.c %reldir%/fuzz_fixture.h
FUZZ_OAI_SERVER_SOURCES = $(FUZZ_OAI_SOURCES) $(OPENAI_SERVER_SOURCES)

tests_fuzz_test_fuzz_request_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_request.c $(FUZZ_OAI_SOURCES)
tests_fuzz_test_fuzz_request_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"request"'
tests_fuzz_test_fuzz_request_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_request_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_request_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_request_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_request.c $(FUZZ_OAI_SOURCES)
tests_fuzz_fuzz_request_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_request_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_request_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_request_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_http_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_http.c $(FUZZ_OAI_SERVER_SOURCES)
tests_fuzz_test_fuzz_http_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"http"'
tests_fuzz_test_fuzz_http_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_http_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_http_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_http_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_http.c $(FUZZ_OAI_SERVER_SOURCES)
tests_fuzz_fuzz_http_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_http_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_http_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_http_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_tokenizer_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_tokenizer.c
tests_fuzz_test_fuzz_tokenizer_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"tokenizer"'
tests_fuzz_test_fuzz_tokenizer_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_tokenizer_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_tokenizer_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_tokenizer_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_tokenizer.c
tests_fuzz_fuzz_tokenizer_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_tokenizer_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_tokenizer_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_chat_template_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_chat_template.c
tests_fuzz_test_fuzz_chat_template_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"chat_template"'
tests_fuzz_test_fuzz_chat_template_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_chat_template_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_chat_template_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_chat_template_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_chat_template.c
tests_fuzz_fuzz_chat_template_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_chat_template_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_chat_template_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_chat_template_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_safetensors_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_safetensors.c
tests_fuzz_test_fuzz_safetensors_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"safetensors"'
tests_fuzz_test_fuzz_safetensors_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_safetensors_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_safetensors_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_safetensors_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_safetensors.c
tests_fuzz_fuzz_safetensors_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_safetensors_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_safetensors_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_safetensors_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_tokenizer_json_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_tokenizer_json.c
tests_fuzz_test_fuzz_tokenizer_json_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"tokenizer_json"'
tests_fuzz_test_fuzz_tokenizer_json_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_tokenizer_json_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_tokenizer_json_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_tokenizer_json_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_tokenizer_json.c
tests_fuzz_fuzz_tokenizer_json_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_tokenizer_json_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_tokenizer_json_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_tokenizer_json_LDADD = $(FUZZ_LDADD)

tests_fuzz_test_fuzz_grammar_SOURCES = %reldir%/corpus_main.c %reldir%/fuzz.h \
	%reldir%/fuzz_grammar.c
tests_fuzz_test_fuzz_grammar_CPPFLAGS = $(TEST_CPPFLAGS) -DFUZZ_TARGET='"grammar"'
tests_fuzz_test_fuzz_grammar_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_test_fuzz_grammar_LDFLAGS = $(TEST_LINKFLAGS)
tests_fuzz_test_fuzz_grammar_LDADD = $(FUZZ_LDADD)
tests_fuzz_fuzz_grammar_SOURCES = %reldir%/fuzz.h %reldir%/fuzz_grammar.c
tests_fuzz_fuzz_grammar_CPPFLAGS = $(TEST_CPPFLAGS)
tests_fuzz_fuzz_grammar_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_grammar_LDFLAGS = $(TEST_LINKFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_grammar_LDADD = $(FUZZ_LDADD)
