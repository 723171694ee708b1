# libpagoda. All of runtime/ and kernels/ is compiled once, into the convenience library
# runtime/libpagoda-private.la; libpagoda.la is that library with an export list: only the
# public pgd_ API of include/pagoda/ is in its dynamic symbol table (internal pgd__ names,
# the CUDA entry points among them, stay inside). The `pagoda` tool and the tests link the
# convenience library itself (they use internals) and export its symbols to the plugins
# they load (-export-dynamic), so one copy of the runtime's state serves both.
noinst_LTLIBRARIES += runtime/libpagoda-private.la
runtime_libpagoda_private_la_SOURCES =
runtime_libpagoda_private_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(XXHASH_CFLAGS) \
	$(OPENBLAS_CFLAGS) $(PCRE2_CFLAGS) $(UTF8PROC_CFLAGS) $(INIH_CFLAGS) $(CUDA_CFLAGS)
runtime_libpagoda_private_la_LIBADD = $(JANSSON_LIBS) $(XXHASH_LIBS) $(OPENBLAS_LIBS) \
	$(PCRE2_LIBS) $(UTF8PROC_LIBS) $(INIH_LIBS) $(CUDA_LIBS) -lm

include %reldir%/base/local.mk
include %reldir%/model/local.mk
include %reldir%/kv/local.mk
include %reldir%/runner/local.mk
include %reldir%/sample/local.mk
include %reldir%/spec/local.mk
include %reldir%/grammar/local.mk
include %reldir%/engine/local.mk
include %reldir%/tokenizer/local.mk
include %reldir%/chat/local.mk
include %reldir%/config/local.mk
include %reldir%/hub/local.mk
include %reldir%/dist/local.mk

lib_LTLIBRARIES += libpagoda.la
libpagoda_la_SOURCES =
libpagoda_la_LIBADD = runtime/libpagoda-private.la
libpagoda_la_LDFLAGS = $(AM_LDFLAGS) -version-info 0:0:0 -no-undefined \
	-export-symbols-regex '^pgd_[a-z0-9]'
# A C++ linker: the CUDA objects need libstdc++ (named in CUDA_LIBS); libtool wants a
# language for a library with no sources of its own.
libpagoda_la_LINK = $(LIBTOOL) $(AM_V_lt) --tag=CC $(AM_LIBTOOLFLAGS) $(LIBTOOLFLAGS) \
	--mode=link $(CCLD) $(AM_CFLAGS) $(CFLAGS) $(libpagoda_la_LDFLAGS) $(LDFLAGS) -o $@
