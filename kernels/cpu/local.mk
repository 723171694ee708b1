# The CPU kernels: one file per op family, the oracle of the CUDA kernels.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/cpu_kernels.h %reldir%/act.c %reldir%/attention.c %reldir%/embed.c \
	%reldir%/linear.c %reldir%/norm.c %reldir%/quant.c %reldir%/rope.c \
	%reldir%/kv_swap.c
