# Tokenizers from tokenizer.json: pre-tokenizers, normalizers, BPE, detokenization.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/bpe.c %reldir%/detok.c %reldir%/pretokenize.c %reldir%/tokenizer.c \
	%reldir%/tokenizer_internal.h %reldir%/tokenizer_util.c
