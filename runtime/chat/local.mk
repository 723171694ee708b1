# Chat templates: a Jinja2 interpreter that renders them as transformers does.
# chat_template.c is the front (pgd_chat_template_*); jinja.h the interpreter's internal header.
runtime_libpagoda_private_la_SOURCES += \
	%reldir%/chat_template.c %reldir%/jinja.h \
	%reldir%/jinja_lexer.c %reldir%/jinja_parse.h %reldir%/jinja_parse_expr.c \
	%reldir%/jinja_parse_stmt.c %reldir%/jinja_eval.c %reldir%/jinja_operators.c \
	%reldir%/jinja_value.c %reldir%/jinja_json.c %reldir%/jinja_strings.c \
	%reldir%/jinja_collection_methods.c %reldir%/jinja_globals.c %reldir%/jinja_filters.c \
	%reldir%/jinja_tests.c
