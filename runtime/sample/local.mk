# Sampling: the CPU sampler, per-row sampling parameters, the shared Philox generator.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/philox.h %reldir%/sample_rows.c %reldir%/sample_rows.h %reldir%/sampler.c \
	%reldir%/sampler.h
