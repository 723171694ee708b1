/* The Jinja sorting filters (sort, dictsort) at their edges, Jinja2 3.1's results: empty
 * sequences (which once handed memcpy a NULL list, undefined behaviour UBSan reports),
 * one item, stability, reverse, attribute and case. Kept apart from test_chat_template.c,
 * which checks whole templates against transformers. */
#include "tests/lib/test_common.h"
#include <pagoda/chat_template.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(jinja_sort);

/* Renders source with the variables of vars_json; returns the output (caller frees). */
static char *render(const char *source, const char *vars_json)
{
    char err[512] = "";
    struct pgd_chat_template *t = NULL;
    cr_assert_eq(pgd_chat_template_create(source, "sort-test", &t, err, sizeof err), PGD_OK,
                 "%s: %s", source, err);
    char *out = NULL;
    enum pgd_status st = pgd_chat_template_render(t, "[{\"role\": \"user\", \"content\": \"x\"}]", NULL, false, vars_json, NULL, NULL,
                                                  &out, NULL, err, sizeof err);
    pgd_chat_template_destroy(t);
    cr_assert_eq(st, PGD_OK, "%s: %s", source, err);
    return out;
}

Test(jinja_sort, sort_and_dictsort_agree_with_jinja2)
{
    static const struct {
        const char *source, *vars, *want;
    } cases[] = {
        /* Empty sequences: an empty list back, nothing iterated. */
        { "{{ [] | sort }}", NULL, "[]" },
        { "{{ [] | sort(reverse=true) | length }}", NULL, "0" },
        { "{{ x | sort(attribute='k') }}", "{\"x\": []}", "[]" },
        { "{% for i in [] | sort %}x{% endfor %}.", NULL, "." },
        { "{{ '' | sort }}", NULL, "[]" },
        { "{{ {} | dictsort }}", NULL, "[]" },
        { "{{ d | dictsort(by='value') | length }}", "{\"d\": {}}", "0" },
        /* One item and more. */
        { "{{ [3] | sort }}", NULL, "[3]" },
        { "{{ [3, 1, 2] | sort }}", NULL, "[1, 2, 3]" },
        { "{{ [3, 1, 2] | sort(reverse=true) }}", NULL, "[3, 2, 1]" },
        { "{{ ['b', 'A', 'a'] | sort }}", NULL, "['A', 'a', 'b']" },
        { "{{ ['b', 'A', 'a'] | sort(case_sensitive=true) }}", NULL, "['A', 'a', 'b']" },
        { "{{ x | sort(attribute='k') | map(attribute='n') | join }}",
          "{\"x\": [{\"k\": 2, \"n\": \"b\"}, {\"k\": 1, \"n\": \"a\"}, {\"k\": 2, \"n\": \"c\"}]}",
          "abc" },
        { "{{ {'b': 1, 'a': 2} | dictsort }}", NULL, "[('a', 2), ('b', 1)]" },
        { "{{ {'b': 1, 'a': 2} | dictsort(by='value', reverse=true) }}", NULL,
          "[('a', 2), ('b', 1)]" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = render(cases[i].source, cases[i].vars);
        cr_assert_str_eq(out, cases[i].want, "%s", cases[i].source);
        free(out);
    }
}
