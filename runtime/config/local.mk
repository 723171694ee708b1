# Deployment settings: the one table of every setting (section, key, type, default, range,
# help, destination), command lines and (issue 16) INI files read through it, --help and
# docs/CONFIG.md printed from it; device selection; generation_config.json defaults.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/settings.c %reldir%/settings.h %reldir%/settings_table.c \
	%reldir%/settings_args.c %reldir%/settings_doc.c %reldir%/ini.c %reldir%/ini.h \
	%reldir%/settings_reload.c %reldir%/settings_reload.h \
	%reldir%/device_select.c %reldir%/device_select.h %reldir%/batch_defaults.c \
	%reldir%/batch_defaults.h \
	%reldir%/generation_config.c %reldir%/generation_config.h
