# Frontend and quantization plugins.
include %reldir%/frontend/openai/local.mk
include %reldir%/frontend/repl/local.mk
include %reldir%/quant/local.mk
