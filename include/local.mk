# The public headers: all that frontends, plugins and embedders may use.
pkginclude_HEADERS += \
	%reldir%/pagoda/status.h %reldir%/pagoda/log.h %reldir%/pagoda/tensor.h %reldir%/pagoda/quant.h \
	%reldir%/pagoda/ops.h %reldir%/pagoda/model.h %reldir%/pagoda/plugin.h \
	%reldir%/pagoda/registry.h %reldir%/pagoda/engine.h %reldir%/pagoda/tokenizer.h \
	%reldir%/pagoda/chat_template.h %reldir%/pagoda/frontend.h
nodist_pkginclude_HEADERS = %reldir%/pagoda/version.h
pkgconfig_DATA = pagoda.pc
