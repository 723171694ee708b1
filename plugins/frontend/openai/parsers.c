/* Tool-call and reasoning parsers of chat answers (see parsers.h for the formats).
 *
 * Each parser holds back only what could still turn out to be something else: the tail of
 * the text that is a prefix of the marker it waits for, or a call whose end has not come.
 * Everything before is final the moment it is fed, so a stream shows content as early as
 * it can, and the same text fed in any pieces splits the same way. */
#include "plugins/frontend/openai/parsers.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { TS_OUT = 0, TS_IN, TS_PASS };           /* tool parser states */
enum { RS_START = 0, RS_REASON, RS_CONTENT };  /* reasoning parser states */

#define HERMES_OPEN "<tool_call>"
#define HERMES_CLOSE "</tool_call>"
#define MISTRAL_MARK "[TOOL_CALLS]"
#define MISTRAL_ARGS "[ARGS]"
#define PYTHON_TAG "<|python_tag|>"
#define THINK_OPEN "<think>"
#define THINK_CLOSE "</think>"

bool oai_tool_parser_from_name(const char *name, enum oai_tool_parser *out)
{
    static const struct { const char *name; enum oai_tool_parser p; } names[] = {
        { "hermes", OAI_TP_HERMES }, { "llama3_json", OAI_TP_LLAMA3_JSON },
        { "mistral", OAI_TP_MISTRAL },
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i].name)) {
            *out = names[i].p;
            return true;
        }
    return false;
}

bool oai_tool_parser_needs_special_tokens(enum oai_tool_parser p)
{
    /* [TOOL_CALLS] and <|python_tag|> are special tokens; <tool_call> is an ordinary added
     * token in Qwen's vocabularies. vLLM's mistral parser keeps special tokens too. */
    return p == OAI_TP_MISTRAL || p == OAI_TP_LLAMA3_JSON;
}

bool oai_reasoning_parser_from_name(const char *name, enum oai_reasoning_parser *out)
{
    if (!strcmp(name, "qwen3"))
        *out = OAI_RP_QWEN3;
    else if (!strcmp(name, "deepseek_r1"))
        *out = OAI_RP_DEEPSEEK_R1;
    else
        return false;
    return true;
}

/* ---- small text helpers ------------------------------------------------------------------ */

/* The offset of m in s[0..n), or -1. */
static long find(const char *s, size_t n, const char *m)
{
    size_t k = strlen(m);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, m, k))
            return (long)i;
    return -1;
}

/* The length of the longest tail of s[0..n) that is a proper prefix of m: bytes that must
 * wait, since the next piece may complete the marker. */
static size_t marker_tail(const char *s, size_t n, const char *m)
{
    size_t k = strlen(m);
    for (size_t t = k - 1 < n ? k - 1 : n; t > 0; t--)
        if (!memcmp(s + n - t, m, t))
            return t;
    return 0;
}

/* Drops the first n bytes of b. */
static void buf_drop(struct pgd__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = '\0';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_space(const char *s, size_t n, size_t i)
{
    while (i < n && is_space(s[i]))
        i++;
    return i;
}

/* ---- calls ------------------------------------------------------------------------------- */

static bool add_call(struct oai_tool_call **calls, int *n_calls, const char *name,
                     json_t *args)
{
    struct oai_tool_call *c = realloc(*calls, (size_t)(*n_calls + 1) * sizeof *c);
    if (!c)
        return false;
    *calls = c;
    char *a = NULL;
    if (!args)
        a = strdup("{}");
    else if (json_is_string(args))   /* some models write the arguments as a JSON string */
        a = strdup(json_string_value(args));
    else
        a = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
    char *nm = strdup(name);
    if (!a || !nm) {
        free(a);
        free(nm);
        return false;
    }
    c[*n_calls] = (struct oai_tool_call){ nm, a };
    (*n_calls)++;
    return true;
}

/* One call object {"name": str, args_key: ...}; args_key2 is another accepted spelling. */
static bool call_from_object(json_t *o, struct oai_tool_call **calls, int *n_calls)
{
    json_t *name = json_object_get(o, "name");
    if (!json_is_object(o) || !json_is_string(name))
        return false;
    json_t *args = json_object_get(o, "arguments");
    if (!args)
        args = json_object_get(o, "parameters");
    if (args && !json_is_object(args) && !json_is_string(args))
        return false;
    return add_call(calls, n_calls, json_string_value(name), args);
}

/* Calls of s[0..n): JSON values (objects or arrays of objects), one after another,
 * separated by whitespace or sep (0: none). All or nothing: on failure no call is added. */
static bool calls_from_json_seq(const char *s, size_t n, char sep, struct oai_tool_call **calls,
                                int *n_calls)
{
    int n0 = *n_calls;
    size_t i = skip_space(s, n, 0);
    bool any = false;
    while (i < n) {
        json_error_t je;
        json_t *v = json_loadb(s + i, n - i, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY |
                               JSON_ALLOW_NUL, &je);
        bool ok = v != NULL;
        if (ok && json_is_array(v)) {
            for (size_t k = 0; ok && k < json_array_size(v); k++)
                ok = call_from_object(json_array_get(v, k), calls, n_calls);
        } else if (ok)
            ok = call_from_object(v, calls, n_calls);
        json_decref(v);
        if (!ok)
            goto fail;
        any = true;
        i = skip_space(s, n, i + je.position);
        if (sep && i < n && s[i] == sep)
            i = skip_space(s, n, i + 1);
    }
    if (any)
        return true;
fail:
    oai_tool_calls_free(*calls + n0, *n_calls - n0);
    *n_calls = n0;
    return false;
}

/* Mistral v11: name[ARGS]{...}, several joined by [TOOL_CALLS]. */
static bool calls_mistral_v11(const char *s, size_t n, struct oai_tool_call **calls,
                              int *n_calls)
{
    int n0 = *n_calls;
    while (n > 0) {
        long next = find(s, n, MISTRAL_MARK);
        size_t len = next < 0 ? n : (size_t)next;
        long a = find(s, len, MISTRAL_ARGS);
        json_t *args = NULL;
        char name[256];
        size_t i = skip_space(s, len, 0), name_len = a < 0 ? 0 : (size_t)a - i;
        if (a >= 0 && name_len > 0 && name_len < sizeof name) {
            size_t k = (size_t)a + strlen(MISTRAL_ARGS);
            args = json_loadb(s + k, len - k, JSON_ALLOW_NUL, NULL);
        }
        if (!json_is_object(args)) {
            json_decref(args);
            oai_tool_calls_free(*calls + n0, *n_calls - n0);
            *n_calls = n0;
            return false;
        }
        memcpy(name, s + i, name_len);
        name[name_len] = '\0';
        while (name_len && is_space(name[name_len - 1]))
            name[--name_len] = '\0';
        bool ok = add_call(calls, n_calls, name, args);
        json_decref(args);
        if (!ok)
            return false;
        if (next < 0)
            break;
        s += len + strlen(MISTRAL_MARK);
        n -= len + strlen(MISTRAL_MARK);
    }
    return true;
}

/* A finished call section body[0..n) of ts's format -> calls; when it does not parse, the
 * section goes back to content as it came (with its opening marker). */
static bool finish_section(struct oai_tool_stream *ts, const char *body, size_t n,
                           struct pgd__buf *content, struct oai_tool_call **calls,
                           int *n_calls, const char *open, const char *close)
{
    bool ok;
    if (ts->kind == OAI_TP_MISTRAL) {
        size_t i = skip_space(body, n, 0);
        ok = i < n && body[i] == '[' ? calls_from_json_seq(body, n, 0, calls, n_calls)
                                     : calls_mistral_v11(body, n, calls, n_calls);
    } else if (ts->kind == OAI_TP_LLAMA3_JSON) {
        size_t i = skip_space(body, n, 0);
        size_t tag = strlen(PYTHON_TAG);
        if (n - i >= tag && !memcmp(body + i, PYTHON_TAG, tag))
            i += tag;
        ok = calls_from_json_seq(body + i, n - i, ';', calls, n_calls);
    } else {
        json_t *v = json_loadb(body, n, JSON_ALLOW_NUL, NULL);
        int before = *n_calls;
        ok = v && call_from_object(v, calls, n_calls);
        json_decref(v);
        ok = ok && *n_calls > before;
    }
    if (ok)
        return true;
    pgd__buf_puts(content, open);
    pgd__buf_append(content, body, n);
    if (close)
        pgd__buf_puts(content, close);
    return !content->failed;
}

/* ---- the tool-call stream ---------------------------------------------------------------- */

/* llama3_json: the answer is a call when its first non-space text is <|python_tag|> or '{';
 * decides once enough has come (TS_IN: collect to the end; TS_PASS: all content). */
static void llama3_decide(struct oai_tool_stream *ts, bool final)
{
    const char *s = ts->hold.p ? ts->hold.p : "";
    size_t n = ts->hold.len, i = skip_space(s, n, 0);
    if (i == n && !final)
        return;
    size_t tag = strlen(PYTHON_TAG), rest = n - i;
    if (rest < tag && !memcmp(s + i, PYTHON_TAG, rest) && !final && rest > 0)
        return;   /* maybe the tag, not all here yet */
    ts->started = true;
    bool call = (rest >= tag && !memcmp(s + i, PYTHON_TAG, tag)) || (rest > 0 && s[i] == '{');
    ts->state = call ? TS_IN : TS_PASS;
}

bool oai_tool_stream_feed(struct oai_tool_stream *ts, const char *text, size_t n, bool final,
                          struct pgd__buf *content, struct oai_tool_call **calls, int *n_calls)
{
    if (ts->kind == OAI_TP_NONE)
        return pgd__buf_append(content, text, n);
    pgd__buf_append(&ts->hold, text, n);
    if (ts->hold.failed)
        return false;
    if (ts->kind == OAI_TP_LLAMA3_JSON && !ts->started)
        llama3_decide(ts, final);
    const char *open = ts->kind == OAI_TP_HERMES ? HERMES_OPEN
                       : ts->kind == OAI_TP_MISTRAL ? MISTRAL_MARK : "";
    for (;;) {
        const char *s = ts->hold.p ? ts->hold.p : "";
        size_t len = ts->hold.len;
        if (ts->state == TS_PASS || (ts->kind == OAI_TP_LLAMA3_JSON && ts->state == TS_OUT)) {
            if (ts->state == TS_PASS || final) {
                pgd__buf_append(content, s, len);
                buf_drop(&ts->hold, len);
            }
            break;
        }
        if (ts->state == TS_OUT) {
            long at = find(s, len, open);
            size_t emit = at >= 0 ? (size_t)at : final ? len : len - marker_tail(s, len, open);
            pgd__buf_append(content, s, emit);
            buf_drop(&ts->hold, at >= 0 ? emit + strlen(open) : emit);
            if (at < 0)
                break;
            ts->state = TS_IN;
            continue;
        }
        /* TS_IN: hermes ends a call at </tool_call>; the others run to the end. */
        long end = ts->kind == OAI_TP_HERMES ? find(s, len, HERMES_CLOSE) : -1;
        if (end < 0 && !final)
            break;
        size_t body = end >= 0 ? (size_t)end : len;
        if (!finish_section(ts, s, body, content, calls, n_calls,
                            ts->kind == OAI_TP_LLAMA3_JSON ? "" : open,
                            end >= 0 ? HERMES_CLOSE : NULL))
            return false;
        buf_drop(&ts->hold, end >= 0 ? body + strlen(HERMES_CLOSE) : body);
        ts->state = TS_OUT;
        if (ts->kind != OAI_TP_HERMES)
            ts->state = TS_PASS;
    }
    return !content->failed && !ts->hold.failed;
}

void oai_tool_stream_fini(struct oai_tool_stream *ts)
{
    pgd__buf_fini(&ts->hold);
}

void oai_tool_calls_free(struct oai_tool_call *calls, int n)
{
    for (int i = 0; i < n; i++) {
        free(calls[i].name);
        free(calls[i].arguments);
    }
}

bool oai_tool_calls_from_constrained(const char *text, size_t n, const char *named,
                                     struct oai_tool_call **calls, int *n_calls)
{
    json_t *v = json_loadb(text, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool ok = false;
    if (named)
        ok = json_is_object(v) && add_call(calls, n_calls, named, v);
    else if (json_is_array(v) && json_array_size(v) > 0) {
        int n0 = *n_calls;
        ok = true;
        for (size_t i = 0; ok && i < json_array_size(v); i++)
            ok = call_from_object(json_array_get(v, i), calls, n_calls);
        if (!ok) {
            oai_tool_calls_free(*calls + n0, *n_calls - n0);
            *n_calls = n0;
        }
    }
    json_decref(v);
    return ok;
}

/* ---- reasoning ------------------------------------------------------------------------- */

bool oai_reasoning_feed(struct oai_reasoning_stream *rs, const char *text, size_t n, bool final,
                        struct pgd__buf *reasoning, struct pgd__buf *content)
{
    if (rs->kind == OAI_RP_NONE || rs->state == RS_CONTENT) {
        rs->state = RS_CONTENT;
        return pgd__buf_append(content, text, n);
    }
    pgd__buf_append(&rs->hold, text, n);
    if (rs->hold.failed)
        return false;
    const char *s = rs->hold.p ? rs->hold.p : "";
    size_t len = rs->hold.len, k = strlen(THINK_OPEN);
    if (rs->state == RS_START) {
        if (len < k && !memcmp(s, THINK_OPEN, len) && !final)
            return true;     /* maybe <think>, not all here yet */
        bool opens = len >= k && !memcmp(s, THINK_OPEN, k);
        if (opens)
            buf_drop(&rs->hold, k);
        rs->state = opens || rs->kind == OAI_RP_DEEPSEEK_R1 ? RS_REASON : RS_CONTENT;
        s = rs->hold.p ? rs->hold.p : "";
        len = rs->hold.len;
        if (rs->state == RS_CONTENT) {
            pgd__buf_append(content, s, len);
            buf_drop(&rs->hold, len);
            return !content->failed;
        }
    }
    long at = find(s, len, THINK_CLOSE);
    size_t emit = at >= 0 ? (size_t)at : final ? len : len - marker_tail(s, len, THINK_CLOSE);
    pgd__buf_append(reasoning, s, emit);
    if (at >= 0) {
        size_t after = (size_t)at + strlen(THINK_CLOSE);
        pgd__buf_append(content, s + after, len - after);
        buf_drop(&rs->hold, len);
        rs->state = RS_CONTENT;
    } else
        buf_drop(&rs->hold, emit);
    return !reasoning->failed && !content->failed;
}

void oai_reasoning_fini(struct oai_reasoning_stream *rs)
{
    pgd__buf_fini(&rs->hold);
}
