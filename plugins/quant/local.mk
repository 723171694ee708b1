# Quantization plugins: one per checkpoint format, each converting its tensors into a
# canonical layout of include/pagoda/quant.h (the runtime's kernels run from there).
QUANT_COMMON_SOURCES = %reldir%/common/qcommon.c %reldir%/common/qcommon.h \
	runtime/base/parallel.c runtime/base/parallel.h

plugin_LTLIBRARIES += %reldir%/gptq/gptq.la %reldir%/awq/awq.la %reldir%/fp8/fp8.la \
	%reldir%/compressed_tensors/compressed_tensors.la
%canon_reldir%_gptq_gptq_la_SOURCES = %reldir%/gptq/gptq.c %reldir%/gptq/gptq_convert.c \
	%reldir%/gptq/gptq_convert.h $(QUANT_COMMON_SOURCES)
%canon_reldir%_gptq_gptq_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_gptq_gptq_la_LIBADD = libpagoda.la -lm
%canon_reldir%_awq_awq_la_SOURCES = %reldir%/awq/awq.c %reldir%/awq/awq_convert.c \
	%reldir%/awq/awq_convert.h $(QUANT_COMMON_SOURCES)
%canon_reldir%_awq_awq_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_awq_awq_la_LIBADD = libpagoda.la -lm
%canon_reldir%_fp8_fp8_la_SOURCES = %reldir%/fp8/fp8.c $(QUANT_COMMON_SOURCES)
%canon_reldir%_fp8_fp8_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_fp8_fp8_la_LIBADD = libpagoda.la -lm
# compressed-tensors (llm-compressor): its pack-quantized layers finish through GPTQ's
# conversion; target and ignore regexes with PCRE2.
%canon_reldir%_compressed_tensors_compressed_tensors_la_SOURCES = \
	%reldir%/compressed_tensors/ct.c %reldir%/compressed_tensors/ct_scheme.c \
	%reldir%/compressed_tensors/ct_scheme.h %reldir%/compressed_tensors/ct_convert.c \
	%reldir%/compressed_tensors/ct_convert.h %reldir%/gptq/gptq_convert.c \
	%reldir%/gptq/gptq_convert.h $(QUANT_COMMON_SOURCES)
%canon_reldir%_compressed_tensors_compressed_tensors_la_CFLAGS = $(AM_CFLAGS) $(PCRE2_CFLAGS)
%canon_reldir%_compressed_tensors_compressed_tensors_la_LDFLAGS = $(PLUGIN_LDFLAGS)
%canon_reldir%_compressed_tensors_compressed_tensors_la_LIBADD = libpagoda.la $(PCRE2_LIBS) -lm

QUANT_BUILD = $(abs_top_builddir)/%reldir%
QUANT_CT_BUILD = $(QUANT_BUILD)/compressed_tensors/.libs
QUANT_PLUGIN_DIRS = $(QUANT_BUILD)/gptq/.libs:$(QUANT_BUILD)/awq/.libs:$(QUANT_BUILD)/fp8/.libs:$(QUANT_CT_BUILD)
