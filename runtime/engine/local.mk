# The engine: requests and streams, the scheduler, the step loop, stop strings, the text
# path.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/engine.c %reldir%/engine_create.c %reldir%/engine_internal.h \
	%reldir%/engine_text.c %reldir%/engine_text.h %reldir%/engine_metrics.c \
	%reldir%/engine_metrics.h %reldir%/scheduler.c \
	%reldir%/scheduler.h %reldir%/stop.c %reldir%/stop.h %reldir%/textio.h
