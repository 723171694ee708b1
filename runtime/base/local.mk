# The base layer: status codes and messages, logging, tensors, devices, metrics, and the
# utilities every subsystem shares.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/buf.c %reldir%/buf.h %reldir%/clock.c %reldir%/clock.h %reldir%/device.c \
	%reldir%/device.h %reldir%/log.c %reldir%/mem.c %reldir%/mem.h %reldir%/metrics.c \
	%reldir%/metrics.h %reldir%/parallel.c %reldir%/parallel.h %reldir%/sse.c \
	%reldir%/sse.h %reldir%/status.c %reldir%/tensor.c %reldir%/utf8.c %reldir%/utf8.h \
	%reldir%/workers.c %reldir%/workers.h

# What a plugin may compile into itself (hidden: plugins export one symbol) to build strings,
# check UTF-8, time its waits and split load-time work over threads without reaching for
# internals of the host.
BASE_PLUGIN_SOURCES = %reldir%/buf.c %reldir%/buf.h %reldir%/clock.c %reldir%/clock.h \
	%reldir%/mem.c %reldir%/mem.h %reldir%/parallel.c %reldir%/parallel.h %reldir%/utf8.c \
	%reldir%/utf8.h
