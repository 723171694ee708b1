/* Chat requests' messages -> the rendered prompt -> tokens: message contents (strings or
 * text parts) as strings, assistant tool_calls' arguments as objects (guide.c), the
 * rendering options (add_generation_prompt, continue_final_message, chat_template_kwargs,
 * a request's own chat_template behind --trust-request-chat-template, echo), and NUL bytes
 * carried through the renderer, whose prompt is a C string. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/chat_template.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A NUL byte (\u0000 in a request) cannot pass through the chat renderer, whose prompt is a
 * NUL-terminated string: each one travels as U+10FFFE (a noncharacter, written "\udbff\udffe"
 * in the JSON) and becomes NUL again in the rendered prompt, whose length is carried. */
#define NUL_STANDIN "\xF4\x8F\xBF\xBE"

/* Replaces each real \u0000 escape of the JSON text j (not "\\u0000", an escaped backslash)
 * with the stand-in's escape. Returns a new malloc'd text, or NULL when there is none. */
static char *nul_to_standin(const char *j)
{
    if (!strstr(j, "\\u0000"))
        return NULL;
    struct pgd__buf b = { 0 };
    size_t slashes = 0;
    for (const char *p = j; *p; p++) {
        if (*p == 'u' && slashes % 2 == 1 && !strncmp(p + 1, "0000", 4)) {
            pgd__buf_append(&b, "udbff\\udffe", 11);
            p += 4;
            slashes = 0;
            continue;
        }
        slashes = *p == '\\' ? slashes + 1 : 0;
        pgd__buf_append(&b, p, 1);
    }
    return pgd__buf_steal(&b, NULL);
}

/* Turns the stand-ins of p[0..*len) back into NUL bytes, in place. */
static void standin_to_nul(char *p, size_t *len)
{
    size_t o = 0, k = strlen(NUL_STANDIN);
    for (size_t i = 0; i < *len; i++) {
        if (i + k <= *len && !memcmp(p + i, NUL_STANDIN, k)) {
            p[o++] = '\0';
            i += k - 1;
        } else
            p[o++] = p[i];
    }
    p[o] = '\0';
    *len = o;
}

/* Renders with the request's own chat_template (allowed by --trust-request-chat-template). */
static enum pgd_status render_request_template(struct oai_server *s, const char *source,
                                               const char *mj, const char *tj, bool add_gen,
                                               const char *kj, char **out, char *err,
                                               size_t errlen)
{
    struct pgd_chat_template *tpl = NULL;
    enum pgd_status st = pgd_chat_template_create(source, "chat_template", &tpl, err, errlen);
    if (st != PGD_OK)
        return PGD_ERR_INVALID_ARG;   /* the client's template: its error is the client's */
    const struct pgd_tokenizer *tok = s->model.tokenizer;
    const char *bos = tok && pgd_tokenizer_bos_id(tok) >= 0
                          ? pgd_tokenizer_token(tok, pgd_tokenizer_bos_id(tok)) : NULL;
    const char *eos = tok && pgd_tokenizer_eos_id(tok) >= 0
                          ? pgd_tokenizer_token(tok, pgd_tokenizer_eos_id(tok)) : NULL;
    st = pgd_chat_template_render(tpl, mj, tj, add_gen, kj, bos, eos, out, NULL, err, errlen);
    pgd_chat_template_destroy(tpl);
    return st == PGD_ERR_TEMPLATE ? PGD_ERR_INVALID_ARG : st;
}

/* continue_final_message: the prompt ends where the final message's text ends (the
 * template's end-of-turn after it is cut), as transformers does it. */
static bool cut_after_final(json_t *msgs, char *prompt, size_t *len, struct oai_error *e)
{
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *c = json_object_get(last, "content");
    const char *t = json_string_value(c);
    size_t n = json_string_length(c);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\n' || t[n - 1] == '\t' || t[n - 1] == '\r'))
        n--;
    while (n && (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r')) {
        t++;
        n--;
    }
    for (size_t i = *len; n && i >= n; i--)
        if (!memcmp(prompt + i - n, t, n)) {
            *len = i;
            prompt[i] = '\0';
            return true;
        }
    if (!n)
        return true;
    OAI_BAD(e, "continue_final_message", "continue_final_message: the final message's text "
            "does not appear in the rendered chat");
    return false;
}

/* The rendering options of a chat body: add_generation_prompt, continue_final_message,
 * chat_template_kwargs, chat_template, echo. Then renders msgs and tokenizes the prompt. */

/* The text a chat request's echo repeats from its last message's content c: a string, or
 * the "text" of a list's text parts one after another; "" for null or anything else.
 * malloc'd, NUL-terminated (the content may hold NULs: *len is its length); NULL when out
 * of memory. */
static char *echo_content(json_t *c, size_t *len)
{
    size_t n = 0;
    if (json_is_string(c)) {
        n = json_string_length(c);
    } else if (json_is_array(c)) {
        size_t i;
        json_t *part;
        json_array_foreach(c, i, part) n += json_string_length(json_object_get(part, "text"));
    }
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (json_is_string(c)) {
        memcpy(out, json_string_value(c), n);
    } else if (json_is_array(c)) {
        size_t i, at = 0;
        json_t *part;
        json_array_foreach(c, i, part) {
            json_t *t = json_object_get(part, "text");
            if (json_is_string(t)) {
                memcpy(out + at, json_string_value(t), json_string_length(t));
                at += json_string_length(t);
            }
        }
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static bool render_messages(struct oai_server *s, json_t *b, struct oai_gen *g, json_t *msgs,
                            bool add_special, struct oai_error *e)
{
    bool add_gen = true, cont = false, echo = false;
    json_t *agp = oai_field(b, "add_generation_prompt");
    if (!oai_opt_bool(b, "add_generation_prompt", &add_gen, e) ||
        !oai_opt_bool(b, "continue_final_message", &cont, e) || !oai_opt_bool(b, "echo", &echo, e))
        return false;
    if (cont && agp && add_gen) {
        OAI_BAD(e, "continue_final_message", "Cannot set both 'continue_final_message' and "
                "'add_generation_prompt' to true");
        return false;
    }
    if (cont)
        add_gen = false;
    json_t *kw = oai_field(b, "chat_template_kwargs");
    if (kw && !json_is_object(kw)) {
        OAI_BAD(e, "chat_template_kwargs", "'chat_template_kwargs' must be an object");
        return false;
    }
    json_t *ct = oai_field(b, "chat_template");
    if (ct && !json_is_string(ct)) {
        OAI_BAD(e, "chat_template", "'chat_template' must be a string");
        return false;
    }
    if (ct && !s->cfg.trust_request_chat_template) {
        OAI_BAD(e, "chat_template", "Chat template is passed with request, but "
                "--trust-request-chat-template is not set. Refused request with untrusted "
                "chat template.");
        return false;
    }
    if (!ct && !s->model.render_chat) {
        OAI_BAD(e, "messages", "this model has no chat template: use /v1/completions");
        return false;
    }
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    const char *role = json_string_value(json_object_get(last, "role"));
    if (echo && role && !strcmp(role, s->cfg.response_role)) {
        /* the echoed text: a string content, or a list's text parts joined (vLLM's);
         * null or anything else echoes nothing */
        if (!(g->echo_text = echo_content(json_object_get(last, "content"), &g->echo_len))) {
            oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
            return false;
        }
    }
    json_t *tools = oai_field(b, "tools");
    char *mj = json_dumps(msgs, JSON_COMPACT);
    char *mj_standin = mj ? nul_to_standin(mj) : NULL;
    char *kj = kw ? json_dumps(kw, JSON_COMPACT) : NULL;
    char *tj = tools ? json_dumps(tools, JSON_COMPACT) : NULL;
    const char *m_in = mj_standin ? mj_standin : mj;
    char *prompt = NULL, err[512] = "";
    enum pgd_status st =
        !mj ? PGD_ERR_NOMEM
        : ct ? render_request_template(s, json_string_value(ct), m_in, tj, add_gen, kj, &prompt,
                                       err, sizeof err)
             : s->model.render_chat(s->model.render_ctx, m_in, tj, add_gen, kj, &prompt, err,
                                    sizeof err);
    free(mj);
    free(mj_standin);
    free(kj);
    free(tj);
    if (st == PGD_ERR_INVALID_ARG) {
        free(prompt);
        OAI_BAD(e, ct ? "chat_template" : "messages", "%s", err);
        return false;
    }
    if (st != PGD_OK) {
        free(prompt);
        oai_err_set(e, 500, "internal_error", NULL, NULL,
                    "the model's chat template failed: %s", err);
        return false;
    }
    size_t len = strlen(prompt);
    standin_to_nul(prompt, &len);
    bool ok = (!cont || cut_after_final(msgs, prompt, &len, e)) && oai_prompts_alloc(g, 1, e) &&
              oai_prompt_tokenize(s, prompt, len, add_special, "messages", &g->prompts[0], e);
    free(prompt);
    return ok;
}

/* "messages" -> the rendered chat -> tokens. Message contents may be strings or lists of
 * text parts; the template sees strings. */
bool oai_parse_messages(struct oai_server *s, json_t *b, struct oai_gen *g, bool add_special,
                           struct oai_error *e)
{
    json_t *msgs = oai_field(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        OAI_BAD(e, "messages", "'messages' must be a non-empty list of messages");
        return false;
    }
    json_t *norm = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            json_decref(norm);
            OAI_BAD(e, param, "'%s' must be an object with a string 'role'", param);
            return false;
        }
        json_t *content = oai_field(m, "content");
        json_t *text;
        if (!content)
            text = json_string("");
        else if (json_is_string(content))
            text = json_copy(content);
        else if (json_is_array(content)) {
            struct pgd__buf tb = { 0 };
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part) {
                json_t *t = json_object_get(part, "text");
                if (!json_is_object(part) ||
                    !json_is_string(json_object_get(part, "type")) ||
                    strcmp(json_string_value(json_object_get(part, "type")), "text") ||
                    !json_is_string(t)) {
                    pgd__buf_fini(&tb);
                    json_decref(norm);
                    OAI_BAD(e, param, "'%s.content[%zu]': only parts {\"type\": \"text\", "
                            "\"text\": ...} are supported", param, j);
                    return false;
                }
                if (j)
                    pgd__buf_append(&tb, "\n", 1);
                pgd__buf_append(&tb, json_string_value(t), json_string_length(t));
            }
            text = tb.failed ? NULL : json_stringn(tb.p ? tb.p : "", tb.len);
            pgd__buf_fini(&tb);
            if (!text) {
                json_decref(norm);
                oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
                return false;
            }
        } else {
            json_decref(norm);
            OAI_BAD(e, param, "'%s.content' must be a string or a list of text parts", param);
            return false;
        }
        json_t *nm = json_copy(m);
        json_object_set_new(nm, "content", text);
        json_array_append_new(norm, nm);
    }
    json_t *tmpl = oai_messages_for_template(norm);
    json_decref(norm);
    bool ok = tmpl && render_messages(s, b, g, tmpl, add_special, e);
    json_decref(tmpl);
    return ok;
}
