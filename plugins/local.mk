# Frontend and quantization plugins.
include %reldir%/frontend/openai/local.mk
