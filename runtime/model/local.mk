# Models: config.json, safetensors, weights, the plugin registry, model loading.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/config.c %reldir%/model.c %reldir%/model.h %reldir%/model_ctx.h %reldir%/model_shard.c \
	%reldir%/qrandom.c %reldir%/qweight.c %reldir%/qweight.h %reldir%/quant.c \
	%reldir%/registry.c %reldir%/safetensors.c %reldir%/safetensors.h %reldir%/weights.c
