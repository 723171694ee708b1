# pgd_ktrace.so: the kernel tracer that the CUDA driver loads into any program
# (CUDA_INJECTION64_PATH; ktrace_cupti.c says how), installed in pagoda's library folder.
# Its tables (ktrace_table.c) need no GPU and are tested in tests/unit/test_ktrace.
KTRACE_TABLE_SOURCES = %reldir%/ktrace_table.c %reldir%/ktrace_table.h
if HAVE_CUPTI
pkglib_LTLIBRARIES = %reldir%/pgd_ktrace.la
# (runtime/base/mem.c: the array growth the tables use; the tests take it from the runtime)
%canon_reldir%_pgd_ktrace_la_SOURCES = %reldir%/ktrace_cupti.c $(KTRACE_TABLE_SOURCES) \
	runtime/base/mem.c runtime/base/mem.h
%canon_reldir%_pgd_ktrace_la_CFLAGS = $(AM_CFLAGS) $(CUDA_CFLAGS)
%canon_reldir%_pgd_ktrace_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols-regex '^InitializeInjection$$'
%canon_reldir%_pgd_ktrace_la_LIBADD = $(CUPTI_LIBS) -lpthread
endif
