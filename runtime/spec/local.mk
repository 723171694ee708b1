# Speculative decoding: --speculative-config (vLLM's JSON), the n-gram (prompt lookup)
# proposer, and the rejection sampler's rules.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/spec_config.c %reldir%/spec_config.h %reldir%/ngram.c %reldir%/ngram.h \
	%reldir%/rejection.c %reldir%/rejection.h
