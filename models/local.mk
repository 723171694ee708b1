# The model zoo: one architecture plugin per family, each on the shared decoder.
DECODER_SOURCES = %reldir%/common/decoder.c %reldir%/common/decoder.h

plugin_LTLIBRARIES += %reldir%/llama/llama.la %reldir%/qwen/qwen.la %reldir%/mistral/mistral.la
%canon_reldir%_llama_llama_la_SOURCES = %reldir%/llama/llama.c $(DECODER_SOURCES)
%canon_reldir%_llama_llama_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_llama_llama_la_LIBADD = libpagoda.la -lm
%canon_reldir%_qwen_qwen_la_SOURCES = %reldir%/qwen/qwen.c $(DECODER_SOURCES)
%canon_reldir%_qwen_qwen_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_qwen_qwen_la_LIBADD = libpagoda.la -lm
%canon_reldir%_mistral_mistral_la_SOURCES = %reldir%/mistral/mistral.c $(DECODER_SOURCES)
%canon_reldir%_mistral_mistral_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_mistral_mistral_la_LIBADD = libpagoda.la -lm

# Their build folders, for an uninstalled `pagoda` (joined by ':').
MODELS_BUILD = $(abs_top_builddir)/%reldir%
MODEL_PLUGIN_DIRS = $(MODELS_BUILD)/llama/.libs:$(MODELS_BUILD)/qwen/.libs:$(MODELS_BUILD)/mistral/.libs
