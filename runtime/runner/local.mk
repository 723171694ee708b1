# The model runner: one flat batch per step, ops dispatch, CUDA graphs, the forward arena.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/arena.c %reldir%/arena.h %reldir%/fwd.h %reldir%/ops.c %reldir%/runner.c \
	%reldir%/runner.h %reldir%/runner_graph.c %reldir%/runner_internal.h \
	%reldir%/runner_sample.c
