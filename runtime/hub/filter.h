/* The file selection of a fetch (filter.c). Internal to runtime/hub/. */
#ifndef PGD_RUNTIME_HUB_FILTER_H
#define PGD_RUNTIME_HUB_FILTER_H

#include <stdbool.h>
#include <stddef.h>

/* True when path (a repo file) is in the default set or matches an include glob, and
 * matches no exclude glob. */
bool pgd__hub_selected(const char *path, const char *const *include, size_t n_include,
                       const char *const *exclude, size_t n_exclude);

/* Walks the default set: false past its end; *name is entry i when it is a literal file
 * name, NULL when it is a glob. */
bool pgd__hub_default_is_literal(size_t i, const char **name);

#endif
