# Tokenizers from tokenizer.json: added tokens, normalizers, pre-tokenizers, BPE, decoders.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/added_tokens.c %reldir%/bpe.c %reldir%/decoder_load.c %reldir%/detok.c \
	%reldir%/normalize.c %reldir%/precompiled.c %reldir%/pretokenize.c %reldir%/regex.c \
	%reldir%/token_bytes.c %reldir%/token_bytes.h %reldir%/tokenizer.c \
	%reldir%/tokenizer_internal.h %reldir%/tokenizer_util.c \
	%reldir%/unicode_class.c %reldir%/unicode_tables.c
