# `pagoda chat` (the repl frontend): the terminal REPL driven in tmux, in-process and
# against `pagoda serve` through --url (test_repl_tmux.py), the piped mode's exact stdout
# and exit codes (test_repl_pipe.py), its settings from a deployment file (test_repl_config.py),
# and the conversation pieces in Criterion
# (test_repl_conv: the <think> splitter and a turn of a reasoning model, /set values,
# /save and /load files).
REPL_TESTS = %reldir%/test_repl_tmux.py %reldir%/test_repl_pipe.py %reldir%/test_repl_config.py
SCRIPT_TESTS += $(REPL_TESTS)
EXTRA_DIST += $(REPL_TESTS) %reldir%/repl_harness.py
if HAVE_CRITERION
CRITERION_TESTS += tests/repl/test_repl_conv
check_PROGRAMS += tests/repl/test_repl_conv
tests_repl_test_repl_conv_SOURCES = %reldir%/test_repl_conv.c plugins/frontend/repl/conv.c \
	plugins/frontend/repl/turn.c
tests_repl_test_repl_conv_CPPFLAGS = $(TEST_CPPFLAGS)
tests_repl_test_repl_conv_CFLAGS = $(TEST_CFLAGS)
tests_repl_test_repl_conv_LDFLAGS = $(TEST_LINKFLAGS)
tests_repl_test_repl_conv_LDADD = $(TEST_LDADD)
endif
