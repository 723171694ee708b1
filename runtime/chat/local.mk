# Chat templates: a Jinja2 interpreter that renders them as transformers does.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/chat_template.c %reldir%/jinja.h %reldir%/jinja_builtins.c \
	%reldir%/jinja_eval.c %reldir%/jinja_filters.c %reldir%/jinja_json.c \
	%reldir%/jinja_lexer.c %reldir%/jinja_parser.c %reldir%/jinja_value.c
