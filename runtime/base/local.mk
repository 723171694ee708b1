# The base layer: status codes and messages, logging, tensors, devices, metrics, and the
# utilities every subsystem shares.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/device.c %reldir%/device.h %reldir%/log.c %reldir%/metrics.c \
	%reldir%/metrics.h %reldir%/status.c %reldir%/tensor.c
