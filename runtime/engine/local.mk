# The engine: requests and streams, the scheduler, the step loop, stop strings, the text
# path.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/bad_words.h %reldir%/engine_backend.h %reldir%/engine_bad_words.c \
	%reldir%/engine_create.c %reldir%/engine_draft.c \
	%reldir%/engine_emit.c %reldir%/engine_notify.c \
	%reldir%/engine_internal.h %reldir%/engine_mask.c %reldir%/engine_metrics.c %reldir%/engine_metrics.h %reldir%/engine_pool.c %reldir%/engine_reader_text.c %reldir%/engine_spec.c \
	%reldir%/engine_stats.c %reldir%/engine_step.c %reldir%/engine_async.c %reldir%/engine_stream.c \
	%reldir%/engine_submit.c %reldir%/engine_text.c %reldir%/engine_text.h \
	%reldir%/scheduler.c %reldir%/scheduler.h %reldir%/sched_headroom.c %reldir%/stop.c %reldir%/stop.h \
	%reldir%/textio.h
