/* Small helpers of the OpenAI frontend: error bodies, UTF-8 repair for JSON strings, token
 * strings and response ids. */
#include "plugins/frontend/openai/oai.h"
#include "runtime/base/utf8.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

json_t *oai_json_str(const char *s, size_t n)
{
    size_t i = pgd__utf8_validate(s, n);
    if (i == n)
        return json_stringn(s, n);
    /* Each byte that does not begin a well-formed sequence becomes one U+FFFD (byte by
     * byte, not by maximal subparts as pgd__utf8_append_lossy does). */
    struct pgd__buf b = { 0 };
    while (i < n) {
        pgd__buf_append(&b, s, i);
        pgd__buf_append(&b, "\xEF\xBF\xBD", 3);
        s += i + 1;
        n -= i + 1;
        i = pgd__utf8_validate(s, n);
    }
    pgd__buf_append(&b, s, n);
    json_t *j = b.failed ? NULL : json_stringn(b.p, b.len);
    pgd__buf_fini(&b);
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

json_t *oai_token_strs(const struct oai_server *s, const int32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        const char *t = s->model.tokenizer ? pgd_tokenizer_token(s->model.tokenizer, ids[i])
                                           : NULL;
        json_array_append_new(a, t ? oai_json_str(t, strlen(t)) : json_null());
    }
    return a;
}
