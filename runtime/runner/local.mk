# The model runner: one flat batch per step, ops dispatch, CUDA graphs, the forward arena.
# Layers, top down: runner.c (uses runner_sample.c, runner_graph.c, piecewise.c, batch.c) ->
# ops.c -> kernels; runner_graph.c, piecewise.c and batch.c never call the runner
# (piecewise.c runs ops.c's recorded calls).
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/arena.c %reldir%/arena.h %reldir%/batch.c %reldir%/batch.h %reldir%/fwd.h \
	%reldir%/ops.c %reldir%/runner.c %reldir%/runner.h %reldir%/runner_graph.c \
	%reldir%/runner_graph.h %reldir%/runner_internal.h %reldir%/runner_sample.c \
	%reldir%/runner_async.c %reldir%/piecewise.c %reldir%/piecewise.h \
	%reldir%/op_profile.c %reldir%/op_profile.h %reldir%/op_profile_print.c \
	%reldir%/op_cost.c %reldir%/op_cost.h %reldir%/runner_swap.c \
	%reldir%/host_work_line.c %reldir%/host_work_line.h
