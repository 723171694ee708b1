/* The base layer's shared utilities: the byte buffer (runtime/base/buf.h), array growth and
 * the fatal out-of-memory hook (runtime/base/mem.h), UTF-8 (runtime/base/utf8.h), whose
 * replacement results are Python's bytes.decode("utf-8", "replace"), and the clock readings
 * for timeouts (runtime/base/clock.h). */
#include <criterion/criterion.h>
#include "runtime/base/buf.h"
#include "runtime/base/clock.h"
#include "runtime/base/mem.h"
#include "runtime/base/parallel.h"
#include "runtime/base/utf8.h"
#include "runtime/base/workers.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/lib/test_common.h"

PGD_TEST_SUITE(buf);
PGD_TEST_SUITE(mem);
PGD_TEST_SUITE(utf8);
PGD_TEST_SUITE(clock);
PGD_TEST_SUITE(parallel);
PGD_TEST_SUITE(workers);

/* ---- the byte buffer ---------------------------------------------------------------------- */

Test(buf, empty_buffer_steals_an_empty_string)
{
    struct pgd__buf b = { 0 };
    size_t len = 99;
    char *s = pgd__buf_steal(&b, &len);
    cr_assert_not_null(s);
    cr_assert_str_eq(s, "");
    cr_assert_eq(len, 0);
    cr_assert_null(b.p);
    free(s);
    pgd__buf_fini(&b); /* fini of an empty buffer is fine, twice too */
    pgd__buf_fini(&b);
}

Test(buf, append_keeps_bytes_and_terminator)
{
    struct pgd__buf b = { 0 };
    cr_assert(pgd__buf_append(&b, NULL, 0));
    cr_assert_not_null(b.p, "an empty append still leaves a NUL-terminated string");
    cr_assert_eq(b.p[0], '\0');
    cr_assert(pgd__buf_append(&b, "ab\0c", 4));
    cr_assert(pgd__buf_puts(&b, "de"));
    cr_assert_eq(b.len, 6);
    cr_assert_eq(memcmp(b.p, "ab\0cde", 7), 0);
    size_t len;
    char *s = pgd__buf_steal(&b, &len);
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(s, "ab\0cde", 7), 0);
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    free(s);
}

Test(buf, exact_capacity_fits_without_growing)
{
    struct pgd__buf b = { 0 };
    cr_assert(pgd__buf_grow(&b, 0));
    size_t cap = b.cap;
    cr_assert_geq(cap, 2);
    char *p = b.p;
    /* cap - 1 bytes and the NUL fill the buffer exactly */
    char fill[4096];
    cr_assert_lt(cap, sizeof fill);
    memset(fill, 'x', cap - 1);
    cr_assert(pgd__buf_append(&b, fill, cap - 1));
    cr_assert_eq(b.cap, cap);
    cr_assert_eq(b.p, p);
    cr_assert_eq(b.p[cap - 1], '\0');
    /* one more byte needs room */
    cr_assert(pgd__buf_append(&b, "y", 1));
    cr_assert_gt(b.cap, cap);
    cr_assert_eq(b.len, cap);
    cr_assert_eq(b.p[cap - 1], 'y');
    cr_assert_eq(b.p[cap], '\0');
    pgd__buf_fini(&b);
}

Test(buf, appendf_formats_in_place_and_past_the_capacity)
{
    struct pgd__buf b = { 0 };
    cr_assert(pgd__buf_appendf(&b, "%d-%s", 42, "x"));
    cr_assert_str_eq(b.p, "42-x");
    /* a formatted piece that exactly fills the remaining room, then one that does not fit */
    size_t room = b.cap - b.len - 1;
    size_t cap = b.cap;
    cr_assert(pgd__buf_appendf(&b, "%*s", (int)room, "r"));
    cr_assert_eq(b.cap, cap, "an exact fit does not grow");
    cr_assert_eq(b.len, b.cap - 1);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    size_t before = b.len;
    cr_assert(pgd__buf_appendf(&b, "<%s>", big));
    cr_assert_eq(b.len, before + sizeof big + 1);
    cr_assert_eq(strncmp(b.p, "42-x", 4), 0);
    cr_assert_eq(b.p[before], '<');
    cr_assert_eq(strcmp(b.p + before + 1 + sizeof big - 1, ">"), 0);
    cr_assert_eq(strlen(b.p), b.len);
    pgd__buf_fini(&b);
}

Test(buf, size_overflow_fails_and_sticks)
{
    struct pgd__buf b = { 0 };
    cr_assert(pgd__buf_puts(&b, "keep"));
    /* len + extra + 1 wraps around: refused before any allocation */
    cr_assert_not(pgd__buf_grow(&b, SIZE_MAX));
    cr_assert(b.failed);
    cr_assert_not(pgd__buf_grow(&b, SIZE_MAX - 4));
    cr_assert_not(pgd__buf_append(&b, "x", 1), "appends after a failure do nothing");
    cr_assert_not(pgd__buf_appendf(&b, "%d", 1));
    cr_assert_eq(b.len, 4);
    cr_assert_str_eq(b.p, "keep", "what fit before the failure is intact");
    size_t len = 7;
    cr_assert_null(pgd__buf_steal(&b, &len), "a failed buffer hands nothing over");
    cr_assert_eq(len, 0);
    cr_assert_null(b.p, "steal released the failed buffer");
}

Test(buf, clear_keeps_memory_and_forgets_failure)
{
    struct pgd__buf b = { 0 };
    cr_assert(pgd__buf_puts(&b, "hello"));
    char *p = b.p;
    cr_assert_not(pgd__buf_grow(&b, SIZE_MAX));
    pgd__buf_clear(&b);
    cr_assert_not(b.failed);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.p, p);
    cr_assert_str_eq(b.p, "");
    cr_assert(pgd__buf_puts(&b, "again"));
    cr_assert_str_eq(b.p, "again");
    pgd__buf_fini(&b);
}

Test(buf, read_stream_reads_everything)
{
    /* more than one 64 KiB round, with NUL bytes inside */
    size_t n = 200000;
    char *data = malloc(n);
    cr_assert_not_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7 % 251);
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    rewind(f);
    char err[256] = "", *got;
    size_t len;
    cr_assert_eq(pgd__read_stream(f, "tmp", &got, &len, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(len, n);
    cr_assert_eq(memcmp(got, data, n), 0);
    cr_assert_eq(got[n], '\0');
    free(got);
    /* at the end: an empty string */
    cr_assert_eq(pgd__read_stream(f, "tmp", &got, &len, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(len, 0);
    cr_assert_str_eq(got, "");
    free(got);
    fclose(f);
    free(data);
}

Test(buf, read_file_names_the_file_when_it_fails)
{
    char err[256] = "", *data = (char *)"untouched";
    cr_assert_eq(pgd__read_file("/nonexistent/pagoda-test", &data, NULL, err, sizeof err),
                 PGD_ERR_NOT_FOUND);
    cr_assert_null(data);
    cr_assert(strstr(err, "/nonexistent/pagoda-test: "), "%s", err);
    /* a directory opens, and reading it fails */
    char dir[] = "/tmp/pgd_test_base_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    enum pgd_status st = pgd__read_file(dir, &data, NULL, err, sizeof err);
    rmdir(dir);
    cr_assert_eq(st, PGD_ERR_IO);
    cr_assert_null(data);
    cr_assert(strstr(err, dir), "%s", err);
}

Test(buf, read_file_reads_the_file)
{
    char path[] = "/tmp/pgd_test_base_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "abc\n", 4), 4);
    close(fd);
    char err[256] = "", *data;
    size_t len;
    enum pgd_status st = pgd__read_file(path, &data, &len, err, sizeof err);
    unlink(path);
    cr_assert_eq(st, PGD_OK, "%s", err);
    cr_assert_eq(len, 4);
    cr_assert_str_eq(data, "abc\n");
    free(data);
}

/* ---- array growth ------------------------------------------------------------------------- */

Test(mem, grow_capacity_doubles_and_clamps)
{
    cr_assert_eq(pgd__grow_capacity(0, 1, 8, 4), 8, "from nothing to the minimum");
    cr_assert_eq(pgd__grow_capacity(8, 8, 8, 4), 8, "need == cap: no growth");
    cr_assert_eq(pgd__grow_capacity(8, 9, 8, 4), 16, "doubling");
    cr_assert_eq(pgd__grow_capacity(8, 100, 8, 4), 100, "a jump past the double");
    size_t max = SIZE_MAX / 4;
    cr_assert_eq(pgd__grow_capacity(max - 1, max, 8, 4), max, "doubling clamped at the limit");
    cr_assert_eq(pgd__grow_capacity(max, max + 1, 8, 4), 0, "need * elem overflows");
    cr_assert_eq(pgd__grow_capacity(0, SIZE_MAX, 8, 2), 0);
    cr_assert_eq(pgd__grow_capacity(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 2, 1, 1), SIZE_MAX);
    cr_assert_eq(pgd__grow_capacity(0, 1, SIZE_MAX, 16), SIZE_MAX / 16,
                 "a minimum above the limit is clamped");
}

Test(mem, array_reserve_grows_and_keeps_elements)
{
    int64_t *a = NULL;
    size_t cap = 0;
    cr_assert(pgd__array_reserve(a, cap, 0), "nothing needed: nothing done");
    cr_assert_null(a);
    cr_assert(pgd__array_reserve(a, cap, 1));
    cr_assert_not_null(a);
    cr_assert_geq(cap, 1);
    size_t first = cap;
    for (size_t i = 0; i < first; i++)
        a[i] = (int64_t)i * 3;
    int64_t *same = a;
    cr_assert(pgd__array_reserve(a, cap, first), "exact capacity: no realloc");
    cr_assert_eq(a, same);
    cr_assert_eq(cap, first);
    cr_assert(pgd__array_reserve(a, cap, first + 1));
    cr_assert_geq(cap, 2 * first);
    for (size_t i = 0; i < first; i++)
        cr_assert_eq(a[i], (int64_t)i * 3);
    free(a);
}

Test(mem, array_reserve_refuses_an_overflowing_size)
{
    int64_t *a = NULL;
    size_t cap = 0;
    cr_assert(pgd__array_reserve(a, cap, 4));
    int64_t *before = a;
    size_t cap_before = cap;
    cr_assert_not(pgd__array_reserve(a, cap, SIZE_MAX / sizeof *a + 1));
    cr_assert_eq(a, before, "the array is left as it was");
    cr_assert_eq(cap, cap_before);
    free(a);
}

Test(mem, oom_hook_aborts, .signal = SIGABRT)
{
    pgd__oom("test allocation", 123);
}

Test(mem, reserve_or_oom_aborts_on_overflow, .signal = SIGABRT)
{
    int32_t *a = NULL;
    size_t cap = 0;
    pgd__array_reserve_or_oom(a, cap, SIZE_MAX / 2, "test table");
    free(a);
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

Test(utf8, decodes_each_length_at_its_edges)
{
    static const struct {
        const char *s;
        size_t len;
        uint32_t cp;
    } ok[] = {
        { "\x00", 1, 0 },            { "\x7F", 1, 0x7F },
        { "\xC2\x80", 2, 0x80 },     { "\xDF\xBF", 2, 0x7FF },
        { "\xE0\xA0\x80", 3, 0x800 }, { "\xED\x9F\xBF", 3, 0xD7FF },
        { "\xEE\x80\x80", 3, 0xE000 }, { "\xEF\xBF\xBF", 3, 0xFFFF },
        { "\xF0\x90\x80\x80", 4, 0x10000 }, { "\xF4\x8F\xBF\xBF", 4, 0x10FFFF },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint32_t cp = 0xDEAD;
        cr_assert_eq(pgd__utf8_next(ok[i].s, ok[i].len, &cp), ok[i].len, "case %zu", i);
        cr_assert_eq(cp, ok[i].cp, "case %zu: U+%04X", i, (unsigned)cp);
        cr_assert_eq(pgd__utf8_next(ok[i].s, ok[i].len, NULL), ok[i].len);
        cr_assert_eq(pgd__utf8_validate(ok[i].s, ok[i].len), ok[i].len);
        if (ok[i].len > 1)
            cr_assert_eq(pgd__utf8_next(ok[i].s, ok[i].len - 1, &cp), 0, "cut short: case %zu",
                         i);
    }
    uint32_t cp = 7;
    cr_assert_eq(pgd__utf8_next("", 0, &cp), 0, "an empty span holds no character");
    cr_assert_eq(cp, 7);
    cr_assert_eq(pgd__utf8_validate("", 0), 0);
}

/* Every class of ill-formed input, with the bytes after each U+FFFD substitution as Python's
 * bytes.decode("utf-8", "replace") gives them. */
Test(utf8, every_invalid_class_is_refused_and_replaced_as_python_does)
{
#define R "\xEF\xBF\xBD"
    static const struct {
        const char *what, *in, *out;
        size_t n, bad_len; /* bad_len: the first maximal subpart */
    } bad[] = {
        { "stray continuation", "\x80", R, 1, 1 },
        { "overlong 2-byte C0", "\xC0\x80", R R, 2, 1 },
        { "overlong 2-byte C1", "\xC1\xBF", R R, 2, 1 },
        { "overlong 3-byte", "\xE0\x80\x80", R R R, 3, 1 },
        { "overlong 3-byte top", "\xE0\x9F\xBF", R R R, 3, 1 },
        { "overlong 4-byte", "\xF0\x80\x80\x80", R R R R, 4, 1 },
        { "overlong 4-byte top", "\xF0\x8F\xBF\xBF", R R R R, 4, 1 },
        { "surrogate D800", "\xED\xA0\x80", R R R, 3, 1 },
        { "surrogate DFFF", "\xED\xBF\xBF", R R R, 3, 1 },
        { "above U+10FFFF", "\xF4\x90\x80\x80", R R R R, 4, 1 },
        { "lead F5", "\xF5\x80\x80\x80", R R R R, 4, 1 },
        { "lead FE", "\xFE", R, 1, 1 },
        { "lead FF", "\xFF", R, 1, 1 },
        { "5-byte form", "\xF8\x88\x80\x80\x80", R R R R R, 5, 1 },
        { "2-byte cut by the end", "\xC2", R, 1, 1 },
        { "3-byte cut by the end", "\xE2\x82", R, 2, 2 },
        { "4-byte cut by the end", "\xF0\x9F\x98", R, 3, 3 },
        { "2-byte cut by ASCII", "\xC2" "A", R "A", 2, 1 },
        { "3-byte cut by ASCII", "\xE2\x82" "A", R "A", 3, 2 },
        { "4-byte cut by ASCII", "\xF0\x9F" "A", R "A", 3, 2 },
        { "cut by a lead byte", "\xE2\x82\xE2\x82\xAC", R "\xE2\x82\xAC", 5, 2 },
    };
#undef R
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t cp = 0xDEAD;
        cr_assert_eq(pgd__utf8_next(bad[i].in, bad[i].n, &cp), 0, "%s", bad[i].what);
        cr_assert_eq(cp, 0xDEAD, "%s", bad[i].what);
        cr_assert_eq(pgd__utf8_validate(bad[i].in, bad[i].n), 0, "%s", bad[i].what);
        cr_assert_eq(pgd__utf8_bad_len(bad[i].in, bad[i].n), bad[i].bad_len, "%s",
                     bad[i].what);
        struct pgd__buf b = { 0 };
        cr_assert(pgd__utf8_append_lossy(&b, bad[i].in, bad[i].n));
        cr_assert_eq(b.len, strlen(bad[i].out), "%s", bad[i].what);
        cr_assert_eq(memcmp(b.p, bad[i].out, b.len), 0, "%s", bad[i].what);
        pgd__buf_fini(&b);
    }
}

Test(utf8, validate_stops_at_the_first_bad_byte)
{
    const char *s = "ab\xC3\xA9\xF0\x9F\x98\x80" "c\x80xyz";
    cr_assert_eq(pgd__utf8_validate(s, strlen(s)), 9);
    cr_assert_eq(pgd__utf8_validate(s, 9), 9, "valid up to the end");
    cr_assert_eq(pgd__utf8_validate(s, 6), 4, "a character cut by the end is not valid");
    struct pgd__buf b = { 0 };
    cr_assert(pgd__utf8_append_lossy(&b, s, strlen(s)));
    cr_assert_str_eq(b.p, "ab\xC3\xA9\xF0\x9F\x98\x80" "c\xEF\xBF\xBDxyz");
    cr_assert(pgd__utf8_append_lossy(&b, "", 0));
    cr_assert_eq(b.len, 15);
    pgd__buf_fini(&b);
}

Test(utf8, encodes_scalar_values_and_refuses_the_rest)
{
    char out[4];
    cr_assert_eq(pgd__utf8_put(0, out), 1);
    cr_assert_eq(out[0], 0);
    cr_assert_eq(pgd__utf8_put(0x7FF, out), 2);
    cr_assert_eq(memcmp(out, "\xDF\xBF", 2), 0);
    cr_assert_eq(pgd__utf8_put(0x20AC, out), 3);
    cr_assert_eq(memcmp(out, "\xE2\x82\xAC", 3), 0);
    cr_assert_eq(pgd__utf8_put(0x10FFFF, out), 4);
    cr_assert_eq(memcmp(out, "\xF4\x8F\xBF\xBF", 4), 0);
    static const uint32_t refused[] = { 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x110000, 0xFFFFFFFF };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        memset(out, 'q', sizeof out);
        cr_assert_eq(pgd__utf8_put(refused[i], out), 0, "U+%X", (unsigned)refused[i]);
        cr_assert_eq(memcmp(out, "qqqq", 4), 0, "nothing written for U+%X",
                     (unsigned)refused[i]);
    }
}

Test(utf8, every_scalar_value_round_trips)
{
    for (uint32_t c = 0; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        char out[4];
        size_t n = pgd__utf8_put(c, out);
        uint32_t back, fast;
        size_t k = pgd__utf8_next(out, n, &back), kf;
        fast = pgd__utf8_decode_valid(out, &kf);
        if (k != n || back != c || n != (c < 0x80 ? 1u : c < 0x800 ? 2u : c < 0x10000 ? 3u : 4u))
            cr_assert_fail("U+%04X: encoded in %zu bytes, decoded %zu bytes as U+%04X",
                           (unsigned)c, n, k, (unsigned)back);
        if (kf != n || fast != c)
            cr_assert_fail("U+%04X: decode_valid read %zu bytes as U+%04X", (unsigned)c, kf,
                           (unsigned)fast);
    }
}

/* RFC 3629's rule, written another way than the table the decoder uses: the lead byte's bit
 * pattern gives the length, the rest are 10xxxxxx, and the value is a scalar value that
 * needs that length. */
static bool rfc3629_ok(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3
               : (s[0] >> 3) == 30 ? 4 : 0;
    if (!len || n < len)
        return false;
    uint32_t c = len == 1 ? s[0] : s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] >> 6) != 2)
            return false;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    return c >= min[len] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
}

Test(utf8, agrees_with_rfc3629_on_every_short_sequence)
{
    /* every 1-, 2- and 3-byte string; 4-byte strings with every lead and second byte */
    unsigned char s[4];
    static const unsigned char tail[] = { 0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                          0xBF, 0xC0, 0xF4, 0xFF };
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        if ((pgd__utf8_next(s, 1, NULL) != 0) != rfc3629_ok(s, 1))
            cr_assert_fail("%02X alone", a);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            if ((pgd__utf8_next(s, 2, NULL) != 0) != rfc3629_ok(s, 2))
                cr_assert_fail("%02X %02X", a, b);
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                if ((pgd__utf8_next(s, 3, NULL) != 0) != rfc3629_ok(s, 3))
                    cr_assert_fail("%02X %02X %02X", a, b, c);
            }
            for (size_t t = 0; t < sizeof tail; t++)
                for (size_t u = 0; u < sizeof tail; u++) {
                    s[2] = tail[t];
                    s[3] = tail[u];
                    bool want = rfc3629_ok(s, 4);
                    if ((pgd__utf8_next(s, 4, NULL) != 0) != want)
                        cr_assert_fail("%02X %02X %02X %02X: RFC 3629 says %d", a, b, s[2],
                                       s[3], want);
                }
        }
    }
}

/* ---- clock readings ------------------------------------------------------------------------ */

static int64_t ns_of(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The deadline lies ms after a reading taken before it and no later than ms after one taken
 * after it, on the clock asked for, with tv_nsec normalized: 999 ms and 1999 ms carry into
 * tv_sec for most starting points, and the checks hold for every one of them. */
static void check_deadline(clockid_t clock, int ms)
{
    struct timespec before, after;
    clock_gettime(clock, &before);
    struct timespec d = pgd__deadline_after(clock, ms);
    clock_gettime(clock, &after);
    cr_assert(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L, "tv_nsec %ld", d.tv_nsec);
    int64_t want = (int64_t)ms * 1000000;
    cr_assert_geq(ns_of(d) - ns_of(before), want, "clock %d, %d ms", (int)clock, ms);
    cr_assert_leq(ns_of(d) - ns_of(after), want, "clock %d, %d ms", (int)clock, ms);
}

Test(clock, deadlines_are_ms_from_now_on_the_clock_asked_for)
{
    static const int ms[] = { 0, 1, 5, 999, 1000, 1999, 60000 };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        check_deadline(CLOCK_MONOTONIC, ms[i]);
        check_deadline(CLOCK_REALTIME, ms[i]);
    }
}

Test(clock, now_ms_is_monotonic_milliseconds)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t a = pgd__now_ms();
    cr_assert_geq(a, (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000);
    struct timespec nap = { 0, 20 * 1000000L };
    nanosleep(&nap, NULL);
    int64_t b = pgd__now_ms();
    cr_assert_geq(b - a, 20);
    cr_assert_lt(b - a, 20000, "a 20 ms sleep took %lld ms", (long long)(b - a));
}

Test(clock, now_s_is_monotonic_seconds_finer_than_a_millisecond)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double a = pgd__now_s();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_geq(a, (double)ns_of(t0) * 1e-9 - 1e-9);
    cr_assert_leq(a, (double)ns_of(t1) * 1e-9 + 1e-9);
    /* A 200 us sleep shows as at least 200 us (pgd__now_ms could round it to 0). */
    struct timespec nap = { 0, 200 * 1000L };
    nanosleep(&nap, NULL);
    double b = pgd__now_s();
    cr_assert_geq(b - a, 200e-6);
    cr_assert_lt(b - a, 20.0, "a 200 us sleep took %g s", b - a);
}

/* ---- parallel for ------------------------------------------------------------------------ */

struct cover {
    int *hits;                       /* [n]: how many ranges covered each index */
    int64_t min_len, fail_at;        /* the shortest range seen; an index whose range fails */
    pthread_t first;                 /* the calling thread */
    int on_caller;                   /* ranges run on the calling thread */
    pthread_mutex_t mu;
};

static bool cover_range(void *arg, int64_t begin, int64_t end)
{
    struct cover *c = arg;
    for (int64_t i = begin; i < end; i++)
        __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->mu);
    if (end - begin < c->min_len)
        c->min_len = end - begin;
    c->on_caller += pthread_equal(pthread_self(), c->first) != 0;
    pthread_mutex_unlock(&c->mu);
    return !(c->fail_at >= begin && c->fail_at < end);
}

/* Every index once, in ranges no shorter than asked (one range, on the caller, when n is
 * small), and a failing range fails the whole. */
Test(parallel, ranges_cover_each_index_once)
{
    const int64_t sizes[] = { 0, 1, 7, 1000, 100003 };
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        int64_t n = sizes[k];
        struct cover c = { .hits = calloc((size_t)n + 1, sizeof(int)), .min_len = INT64_MAX,
                           .fail_at = -1, .first = pthread_self() };
        pthread_mutex_init(&c.mu, NULL);
        cr_assert(pgd__parallel_for(n, 1000, 8, cover_range, &c), "n %lld", (long long)n);
        for (int64_t i = 0; i < n; i++)
            cr_assert_eq(c.hits[i], 1, "n %lld: index %lld covered %d times", (long long)n,
                         (long long)i, c.hits[i]);
        if (n >= 1000)
            cr_assert_geq(c.min_len, 1000, "n %lld: a range of %lld", (long long)n,
                          (long long)c.min_len);
        else if (n > 0)
            cr_assert_eq(c.on_caller, 1, "n %lld: a small n runs on the caller alone",
                         (long long)n);
        c.fail_at = n / 2;
        if (n > 0)
            cr_assert(!pgd__parallel_for(n, 1000, 8, cover_range, &c), "n %lld", (long long)n);
        pthread_mutex_destroy(&c.mu);
        free(c.hits);
    }
}

/* ---- the helper pool (workers.h) ----------------------------------------------------------- */

struct pool_items {
    int *hits;                       /* [n] how often each item ran */
    pthread_t *who;                  /* [n] the thread that ran it */
    long sleep_us;
};

static void pool_item(void *arg, int i)
{
    struct pool_items *p = arg;
    __atomic_add_fetch(&p->hits[i], 1, __ATOMIC_RELAXED);
    p->who[i] = pthread_self();
    if (p->sleep_us)
        usleep((useconds_t)p->sleep_us);
}

/* Every item runs exactly once a call, over many calls of every size (none, one, fewer
 * than the threads, many), and a call with items that take a while spreads them over the
 * caller and the helpers. Without a pool the caller runs them all. */
Test(workers, every_item_runs_once_and_the_helpers_share_them)
{
    struct pgd__workers *w;
    char err[256];
    cr_assert_eq(pgd__workers_create(3, &w, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__workers_threads(w), 3);
    enum { N = 64 };
    int hits[N];
    pthread_t who[N];
    struct pool_items p = { hits, who, 0 };
    for (int round = 0; round < 2000; round++) {
        int n = round % 67 - 2;          /* -2 .. 64 */
        memset(hits, 0, sizeof hits);
        pgd__workers_run(w, n, pool_item, &p);
        for (int i = 0; i < N; i++)
            cr_assert_eq(hits[i], i < n ? 1 : 0, "round %d (n %d): item %d ran %d times", round,
                         n, i, hits[i]);
    }
    memset(hits, 0, sizeof hits);
    p.sleep_us = 2000;
    pgd__workers_run(w, 16, pool_item, &p);
    int others = 0;
    for (int i = 0; i < 16; i++) {
        cr_assert_eq(hits[i], 1);
        others += !pthread_equal(who[i], pthread_self());
    }
    cr_assert_gt(others, 0, "the helpers took none of 16 items of 2 ms");
    pgd__workers_destroy(w);
    memset(hits, 0, sizeof hits);
    pgd__workers_run(NULL, 5, pool_item, &p);
    for (int i = 0; i < 5; i++)
        cr_assert(hits[i] == 1 && pthread_equal(who[i], pthread_self()));
    pgd__workers_destroy(NULL);
    cr_assert_eq(pgd__workers_create(0, &w, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "0 helper threads"), "%s", err);
    cr_assert_eq(w, NULL);
}
