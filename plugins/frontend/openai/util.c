/* Small helpers of the OpenAI frontend: a byte buffer, error bodies, UTF-8 repair for JSON
 * strings, token strings and response ids. */
#include "plugins/frontend/openai/oai.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void oai_buf_add(struct oai_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void oai_buf_addf(struct oai_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        oai_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    oai_buf_add(b, big, (size_t)n);
    free(big);
}

void oai_buf_fini(struct oai_buf *b)
{
    free(b->p);
    *b = (struct oai_buf){ 0 };
}

void oai_err_set(struct oai_error *e, int status, const char *type, const char *param,
                 const char *code, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len)
        return 0;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

json_t *oai_json_str(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k)
            break;
        i += k;
    }
    if (i == n)
        return json_stringn(s, n);
    struct oai_buf b = { 0 };
    oai_buf_add(&b, s, i);
    while (i < n) {
        size_t k = utf8_seq(u + i, n - i);
        if (k) {
            oai_buf_add(&b, s + i, k);
            i += k;
        } else {
            oai_buf_add(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    json_t *j = b.failed ? NULL : json_stringn(b.p ? b.p : "", b.len);
    oai_buf_fini(&b);
    return j;
}

json_t *oai_error_json(const char *type, const char *param, const char *code, const char *msg)
{
    json_t *m = oai_json_str(msg, strlen(msg));
    return json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", m ? m : json_string(""),
                     "type", type, "param", param && *param ? json_string(param) : json_null(),
                     "code", code ? json_string(code) : json_null());
}

json_t *oai_json_logprob(double lp)
{
    if (!isfinite(lp) || lp < -9999.0)
        lp = -9999.0;
    return json_real(lp);
}

void oai_token_text(const struct pgd_tokenizer *tok, int32_t id, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    if (tok && pgd_tokenizer_decode(tok, &id, 1, false, text, len, NULL, 0) == PGD_OK)
        return;
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "token_id:%d", (int)id);
    *text = strdup(tmp);
    *len = *text ? (size_t)n : 0;
}

void oai_make_id(struct oai_server *s, const char *prefix, char *out, size_t outlen)
{
    uint64_t n = atomic_fetch_add(&s->next_id, 1);
    /* A counter mixed with the start time: unique within a process, unlikely to repeat
     * across restarts. */
    uint64_t z = n + 0x9e3779b97f4a7c15ull * (uint64_t)s->started;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    snprintf(out, outlen, "%s%016llx%08llx", prefix, (unsigned long long)z,
             (unsigned long long)(n & 0xffffffffu));
}
