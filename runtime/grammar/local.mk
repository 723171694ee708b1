# Structured output: grammars (GBNF/EBNF text, regex, JSON Schema), the pushdown matcher,
# the vocabulary trie, token masks and the cache of compiled guides.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/grammar.h %reldir%/guide.h %reldir%/gram_build.c %reldir%/gram_parse.c \
	%reldir%/gram_regex.c %reldir%/gram_schema.c %reldir%/gram_numrange.c %reldir%/numrange.h \
	%reldir%/gram_match.c \
	%reldir%/gram_vocab.c %reldir%/gram_mask.c %reldir%/gram_guide.c
