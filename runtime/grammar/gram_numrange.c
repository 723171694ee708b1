/* Numeric ranges as regular expressions, for JSON Schema's minimum / maximum /
 * exclusiveMinimum / exclusiveMaximum (gram_schema.c): the decimal strings of the integers of
 * [lo, hi], and the decimal strings (JSON number syntax without an exponent: an integer part
 * of at most 16 digits, at most 15 fraction digits) of the numbers of [lo, hi] for double
 * bounds.
 *
 * A double bound is read as the shortest decimal that converts back to it (what a JSON
 * writer prints, so `0.1` means 0.1 and not 0.1000000000000000055...), an exclusive bound as
 * the inclusive bound at the next double inward. Every string the expression accepts then
 * also passes a validator that compares doubles (Python's jsonschema): rounding to double
 * is monotone, so x >= B in decimals gives double(x) >= double(B). The bound is then
 * rounded inward to 15 fraction digits (the finest the syntax can write).
 *
 * The expression of [A, B] for 0 <= A <= B splits on the integer part: A's integer part
 * with a fraction >= A's, the integers strictly between with any fraction, B's integer
 * part with a fraction <= B's. A fraction bound compares digit strings padded with zeros
 * (".5" = ".50"), one digit at a time. */
#include "runtime/grammar/numrange.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- integers ---------------------------------------------------------------------------- */

/* Regex for the decimal strings of [lo, hi], both with L digits (equal lengths). */
static void same_len_range(struct pgd__buf *b, const char *lo, const char *hi, size_t L)
{
    if (L == 0)
        return;
    if (lo[0] == hi[0]) {
        pgd__buf_append(b, lo, 1);
        same_len_range(b, lo + 1, hi + 1, L - 1);
        return;
    }
    bool lo_zeros = strspn(lo + 1, "0") >= L - 1, hi_nines = strspn(hi + 1, "9") >= L - 1;
    if (lo_zeros && hi_nines) {
        pgd__buf_appendf(b, "[%c-%c]", lo[0], hi[0]);
        if (L > 1)
            pgd__buf_appendf(b, "[0-9]{%zu}", L - 1);
        return;
    }
    char nines[PGD__NUM_INT_DIGITS + 1], zeros[PGD__NUM_INT_DIGITS + 1];
    memset(nines, '9', L - 1);
    nines[L - 1] = '\0';
    memset(zeros, '0', L - 1);
    zeros[L - 1] = '\0';
    pgd__buf_puts(b, "(");
    pgd__buf_append(b, lo, 1);
    same_len_range(b, lo + 1, nines, L - 1);
    if (lo[0] + 1 <= hi[0] - 1) {
        pgd__buf_appendf(b, "|[%c-%c]", lo[0] + 1, hi[0] - 1);
        if (L > 1)
            pgd__buf_appendf(b, "[0-9]{%zu}", L - 1);
    }
    pgd__buf_puts(b, "|");
    pgd__buf_append(b, hi, 1);
    same_len_range(b, zeros, hi + 1, L - 1);
    pgd__buf_puts(b, ")");
}

void pgd__nonneg_int_range(struct pgd__buf *b, long long lo, long long hi)
{
    bool first = true;
    long long p = 1;                /* 10^(d-1) */
    for (int d = 1; d <= PGD__NUM_INT_DIGITS && (d == 1 || p <= hi); d++, p *= 10) {
        long long a = d == 1 ? 0 : p, z = p * 10 - 1;
        if (a < lo)
            a = lo;
        if (z > hi)
            z = hi;
        if (a > z)
            continue;
        char as[24], zs[24];
        snprintf(as, sizeof as, "%lld", a);
        snprintf(zs, sizeof zs, "%lld", z);
        if (!first)
            pgd__buf_puts(b, "|");
        first = false;
        same_len_range(b, as, zs, strlen(as));
    }
}

void pgd__int_range(struct pgd__buf *b, long long lo, long long hi)
{
    bool alt = false;
    if (lo < 0) {
        long long a = hi < 0 ? -hi : 1, z = -lo;
        pgd__buf_puts(b, "-(");
        pgd__nonneg_int_range(b, a, z);
        pgd__buf_puts(b, ")");
        alt = true;
    }
    if (hi >= 0) {
        if (alt)
            pgd__buf_puts(b, "|");
        pgd__nonneg_int_range(b, lo < 0 ? 0 : lo, hi);
    }
}

/* ---- decimals ---------------------------------------------------------------------------- */

#define FD PGD__NUM_FRAC_DIGITS

/* A magnitude with FD fraction digits: ip + 0.frac. */
struct mag {
    long long ip;
    char frac[FD + 1];              /* exactly FD digits */
};

/* frac with its trailing zeros cut, into out. */
static void strip_zeros(const char *frac, char *out)
{
    size_t n = strlen(frac);
    while (n > 0 && frac[n - 1] == '0')
        n--;
    memcpy(out, frac, n);
    out[n] = '\0';
}

/* The largest magnitude the syntax writes: 16 nines . 15 nines. */
static struct mag mag_max(void)
{
    struct mag m = { .ip = PGD__NUM_INT_LIMIT };
    memset(m.frac, '9', FD);
    m.frac[FD] = '\0';
    return m;
}

static int mag_cmp(const struct mag *a, const struct mag *b)
{
    if (a->ip != b->ip)
        return a->ip < b->ip ? -1 : 1;
    return strcmp(a->frac, b->frac);
}

/* |x| (finite) rounded to FD fraction digits, up (away from zero) or down; false when it is
 * beyond mag_max (the caller clamps). */
static bool mag_of(double x, bool up, struct mag *m)
{
    x = fabs(x);
    /* The shortest of %.Ne that reads back as x. */
    char s[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*e", p - 1, x);
        if (strtod(s, NULL) == x)
            break;
    }
    char digits[24];
    size_t nd = 0;
    const char *q = s;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    int e10 = atoi(q + 1);          /* x = d0.d1d2... * 10^e10 */
    if (e10 >= PGD__NUM_INT_DIGITS)
        return false;
    /* Digit k of the number (k = 0 the units, k > 0 the k-th fraction digit, k < 0 the
     * 10^-k place of the integer part) is digits[e10 + k], when in range. */
    long long ip = 0;
    for (int k = -e10; k <= 0; k++) {
        int i = e10 + k;
        ip = ip * 10 + (i >= 0 && (size_t)i < nd ? digits[i] - '0' : 0);
    }
    bool rest = false;              /* a non-zero digit beyond FD */
    for (int k = 1; k <= FD; k++) {
        int i = e10 + k;
        m->frac[k - 1] = i >= 0 && (size_t)i < nd ? digits[i] : '0';
    }
    m->frac[FD] = '\0';
    for (int i = e10 + FD + 1 < 0 ? 0 : e10 + FD + 1; (size_t)i < nd; i++)
        rest |= digits[i] != '0';
    m->ip = ip;
    if (up && rest) {
        int k = FD - 1;
        while (k >= 0 && m->frac[k] == '9')
            m->frac[k--] = '0';
        if (k >= 0)
            m->frac[k]++;
        else
            m->ip++;
    }
    return m->ip <= PGD__NUM_INT_LIMIT;
}

static void put_digit_class(struct pgd__buf *b, int lo, int hi)
{
    if (lo == hi)
        pgd__buf_appendf(b, "%c", '0' + lo);
    else
        pgd__buf_appendf(b, "[%c-%c]", '0' + lo, '0' + hi);
}

/* Alternatives (separated by |) for the digit strings t with 1 <= len(t) <= R whose value
 * 0.t lies in [0.lo, 0.hi]; lo and hi have no trailing zeros ("" is 0), hi NULL is no upper
 * bound. The empty string (0) is in the set iff lo is "" (the caller says so). */
static void frac_alts(struct pgd__buf *b, const char *lo, const char *hi, int R)
{
    if (!*lo && !hi) {
        pgd__buf_appendf(b, "[0-9]{1,%d}", R);
        return;
    }
    if (!*lo && !*hi) {
        pgd__buf_appendf(b, "0{1,%d}", R);
        return;
    }
    int l0 = *lo ? *lo - '0' : 0, h0 = !hi ? 9 : *hi ? *hi - '0' : 0;
    const char *lrest = *lo ? lo + 1 : "", *hrest = hi && *hi ? hi + 1 : "";
    bool first = true;
    /* One alternative: first digit(s) [a, z], then a tail of at most R - 1 digits in
     * [tlo, thi] (empty allowed iff tlo is ""). */
#define ALT(a, z, tlo, thi) do { \
        if (!first) \
            pgd__buf_puts(b, "|"); \
        first = false; \
        put_digit_class(b, (a), (z)); \
        if (R > 1) { \
            bool opt_ = !*(tlo); \
            pgd__buf_puts(b, "("); \
            frac_alts(b, (tlo), (thi), R - 1); \
            pgd__buf_puts(b, opt_ ? ")?" : ")"); \
        } \
    } while (0)
    if (!hi) {
        ALT(l0, l0, lrest, (const char *)NULL);
        if (l0 < 9)
            ALT(l0 + 1, 9, "", (const char *)NULL);
    } else if (l0 == h0) {
        ALT(l0, l0, lrest, hrest);
    } else {
        ALT(l0, l0, lrest, (const char *)NULL);
        if (l0 + 1 <= h0 - 1)
            ALT(l0 + 1, h0 - 1, "", (const char *)NULL);
        ALT(h0, h0, "", hrest);
    }
#undef ALT
}

/* The optional fraction ("." digits) of a number with value in [0.lo, 0.hi] (lo, hi as in
 * frac_alts). */
static void put_frac(struct pgd__buf *b, const char *lo, const char *hi)
{
    pgd__buf_puts(b, "(\\.(");
    frac_alts(b, lo, hi, FD);
    pgd__buf_puts(b, *lo ? "))" : "))?");
}

/* Alternatives for the magnitudes of [a, z], a <= z. */
static void mag_range(struct pgd__buf *b, const struct mag *a, const struct mag *z)
{
    char af[FD + 1], zf[FD + 1];
    strip_zeros(a->frac, af);
    strip_zeros(z->frac, zf);
    if (a->ip == z->ip) {
        pgd__buf_appendf(b, "%lld", a->ip);
        put_frac(b, af, zf);
        return;
    }
    pgd__buf_appendf(b, "%lld", a->ip);
    put_frac(b, af, NULL);
    if (a->ip + 1 <= z->ip - 1) {
        pgd__buf_puts(b, "|(");
        pgd__nonneg_int_range(b, a->ip + 1, z->ip - 1);
        pgd__buf_puts(b, ")");
        put_frac(b, "", NULL);
    }
    pgd__buf_appendf(b, "|%lld", z->ip);
    put_frac(b, "", zf);
}

bool pgd__num_range(struct pgd__buf *b, double lo, bool lo_excl, double hi, bool hi_excl)
{
    if (lo_excl)
        lo = nextafter(lo, INFINITY);
    if (hi_excl)
        hi = nextafter(hi, -INFINITY);
    if (!(lo <= hi))
        return false;
    struct mag zero = { .ip = 0 }, max = mag_max(), l, h;
    memset(zero.frac, '0', FD);
    zero.frac[FD] = '\0';
    /* Each bound's magnitude, rounded inward; beyond the syntax's reach: clamped (an outer
     * bound) or nothing fits (an inner one). */
    bool l_in = isfinite(lo) && mag_of(lo, lo >= 0, &l);
    bool h_in = isfinite(hi) && mag_of(hi, hi < 0, &h);
    if (!l_in && lo > 0)
        return false;
    if (!h_in && hi < 0)
        return false;
    if (!l_in)
        l = max;
    if (!h_in)
        h = max;
    bool alt = false;
    if (lo < 0) {
        /* negatives: magnitudes in [|hi| up, |lo| down] (from 0 when hi >= 0) */
        const struct mag *na = hi < 0 ? &h : &zero;
        if (mag_cmp(na, &l) > 0)
            return false;
        pgd__buf_puts(b, "-(");
        mag_range(b, na, &l);
        pgd__buf_puts(b, ")");
        alt = true;
    }
    if (hi >= 0) {
        const struct mag *pa = lo > 0 ? &l : &zero;
        if (mag_cmp(pa, &h) > 0)
            return alt;
        if (alt)
            pgd__buf_puts(b, "|");
        pgd__buf_puts(b, "(");
        mag_range(b, pa, &h);
        pgd__buf_puts(b, ")");
        alt = true;
    }
    return alt;
}
