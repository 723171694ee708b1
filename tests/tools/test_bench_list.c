/* The `pagoda bench` commands' list flags (tools/bench/bench_list.c): good lists parsed in
 * order, and each kind of bad one (an empty list or item, a trailing comma, out of range,
 * past long, not a whole decimal number, one item too many) refused with a message that
 * names the flag, the item and what the flag takes, the count left as it was. */
#include "config.h"
#include "tools/bench/bench_common.h"
#include "tests/lib/test_common.h"
#include <string.h>

PGD_TEST_SUITE(bench_list);

#define MAX 4

struct parsed {
    int rc, n;
    int v[MAX];
    char err[256];
};

/* s as --batch of 1..8 numbers, at most MAX; n starts at -1 to show whether it was set. */
static struct parsed parse(const char *s)
{
    struct parsed p = { .n = -1 };
    p.rc = pgd_tool_bench_int_list("--batch", s, 1, 8, p.v, MAX, &p.n, p.err, sizeof p.err);
    return p;
}

Test(bench_list, good_lists_are_read_in_order)
{
    static const struct {
        const char *s;
        int n, v[MAX];
    } GOOD[] = {
        { "4", 1, { 4 } },
        { "1,2,4", 3, { 1, 2, 4 } },
        { "8,1,8,1", 4, { 8, 1, 8, 1 } },     /* both bounds, MAX items */
        { "08,002", 2, { 8, 2 } },            /* leading zeros are still decimal */
    };
    for (size_t i = 0; i < sizeof GOOD / sizeof GOOD[0]; i++) {
        struct parsed p = parse(GOOD[i].s);
        cr_assert_eq(p.rc, 0, "'%s': %s", GOOD[i].s, p.err);
        cr_assert_eq(p.n, GOOD[i].n, "'%s': %d items", GOOD[i].s, p.n);
        cr_assert_arr_eq(p.v, GOOD[i].v, (size_t)GOOD[i].n * sizeof(int), "'%s'", GOOD[i].s);
    }
}

/* Each bad list, and the words its message must hold besides the flag and the bounds. */
Test(bench_list, bad_lists_are_refused_naming_the_flag_and_the_item)
{
    static const struct {
        const char *s, *says;
    } BAD[] = {
        { "", "an empty list" },
        { "1,,2", "item 2 of '1,,2' is empty" },
        { ",1", "item 1 of ',1' is empty" },
        { "1,2,", "item 3 of '1,2,' is empty" },
        { "0", "0 is out of range" },
        { "1,9", "9 is out of range" },
        { "-3", "-3 is out of range" },
        { "99999999999999999999999", "99999999999999999999999 is out of range" },
        { "1,x", "'x' is not a number" },
        { "2k", "'2k' is not a number" },
        { "1, 2", "' 2' is not a number" },
        { "+2", "'+2' is not a number" },
        { "-", "'-' is not a number" },
        { "1.5", "'1.5' is not a number" },
        { "1,2,3,4,5", "'1,2,3,4,5' has more than 4 items" },
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        struct parsed p = parse(BAD[i].s);
        cr_assert_neq(p.rc, 0, "'%s' was taken", BAD[i].s);
        cr_assert_eq(p.n, -1, "'%s': the count was changed to %d", BAD[i].s, p.n);
        cr_assert(strstr(p.err, BAD[i].says), "'%s': \"%s\" does not say \"%s\"", BAD[i].s,
                  p.err, BAD[i].says);
        cr_assert(!strncmp(p.err, "--batch: ", 9) &&
                      strstr(p.err, "--batch takes up to 4 numbers in 1..8, comma-separated"),
                  "'%s': \"%s\" names neither the flag nor what it takes", BAD[i].s, p.err);
    }
}
