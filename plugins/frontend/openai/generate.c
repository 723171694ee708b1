/* Running a completion, chat or Responses request on the engine and answering it: one
 * engine request per prompt (each with n samples, or best_of of which the n best by
 * cumulative logprob come back), outputs read from their streams round-robin, and either
 * one JSON response at the end or a Server-Sent Events stream of chunks ending with
 * `data: [DONE]` (the Responses API: its events, ending with response.completed).
 *
 * Chat answers go through the parsers of parsers.h: the reasoning section becomes
 * reasoning_content, the model's tool-call syntax (tool_choice "auto") or the constrained
 * JSON (tool_choice "required" or a named tool) becomes tool_calls, streamed as OpenAI
 * streams them.
 *
 * A client that goes away is noticed within WAIT_MS (the connection's socket is polled for
 * a hang-up between outputs): its engine requests are aborted at once, which frees their KV
 * blocks. A stream whose client takes none of its bytes for write_timeout seconds has its
 * connection closed by libmicrohttpd (see oai_conn_sending), which frees the job and so
 * aborts its engine requests. When the server's grace period ends, running requests are
 * aborted too: a stream then ends with an error chunk, a plain request with a 503. */
#include "plugins/frontend/openai/gen.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 20                 /* longest wait on a stream before checking the client */


static enum oai_route gen_route(const struct oai_gen *g)
{
    return g->api == OAI_API_RESPONSES ? R_RESPONSES : g->chat ? R_CHAT : R_COMPLETIONS;
}

static void streams_destroy(struct job *j)
{
    for (int i = 0; j->streams && i < j->g.n_prompts; i++) {
        if (j->streams[i] && !j->closed[i]) {
            pthread_mutex_lock(&j->s->mu);
            j->s->streams_aborted++;
            pthread_mutex_unlock(&j->s->mu);
        }
        pgd_stream_destroy(j->streams[i]);     /* aborts an unfinished request */
        j->streams[i] = NULL;
    }
    j->n_open = 0;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    streams_destroy(j);
    free(j->error);
    for (int i = 0; i < j->n_ch; i++) {
        struct choice *c = &j->ch[i];
        pgd__buf_fini(&c->text);
        pgd__buf_fini(&c->reasoning);
        pgd__buf_fini(&c->content);
        json_decref(c->lp);
        oai_reasoning_fini(&c->rs);
        oai_tool_stream_fini(&c->ts);
        oai_tool_calls_free(c->calls, c->n_calls);
        free(c->calls);
    }
    for (int i = 0; j->prompt_lp && i < j->g.n_prompts; i++) {
        json_decref(j->prompt_lp[i]);
        json_decref(j->prompt_lp_vllm[i]);
    }
    free(j->prompt_lp);
    free(j->prompt_lp_vllm);
    free(j->prompt_tokens);
    free(j->cached_tokens);
    free(j->ch);
    free(j->streams);
    free(j->closed);
    pgd__buf_fini(&j->out);
    oai_gen_fini(&j->g);
    free(j);
}

/* ---- logprobs as JSON ------------------------------------------------------------------ */

static json_t *bytes_array(const char *t, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)t[i]));
    return a;
}

/* A chat logprobs entry: {"token", "logprob", "bytes", "top_logprobs": [...]}. */
static json_t *chat_lp_entry(const struct pgd_tokenizer *tok, const struct pgd_token_logprobs *l,
                             int want_top)
{
    char *t;
    size_t n;
    oai_token_text(tok, l->chosen.token, &t, &n);
    json_t *top = json_array();
    for (int k = 0; k < l->n_top && k < want_top; k++) {
        char *tt;
        size_t tn;
        oai_token_text(tok, l->top[k].token, &tt, &tn);
        json_array_append_new(top, json_pack("{s:o, s:o, s:o}", "token", oai_json_str(tt, tn),
                                             "logprob", oai_json_logprob(l->top[k].logprob),
                                             "bytes", bytes_array(tt, tn)));
        free(tt);
    }
    json_t *e = json_pack("{s:o, s:o, s:o, s:o}", "token", oai_json_str(t ? t : "", n), "logprob",
                          oai_json_logprob(l->chosen.logprob), "bytes", bytes_array(t, n),
                          "top_logprobs", top);
    free(t);
    return e;
}

static json_t *compl_lp_new(void)
{
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs",
                     "text_offset");
}

/* Appends one token to a completions logprobs object; l NULL: the first prompt token
 * (no logprob). Returns the token text's length (for text_offset). */
static size_t compl_lp_add(json_t *obj, const struct pgd_tokenizer *tok, int32_t token,
                           const struct pgd_token_logprobs *l, int want_top, size_t offset)
{
    char *t;
    size_t n;
    oai_token_text(tok, l ? l->chosen.token : token, &t, &n);
    json_array_append_new(json_object_get(obj, "tokens"), oai_json_str(t ? t : "", n));
    json_array_append_new(json_object_get(obj, "token_logprobs"),
                          l ? oai_json_logprob(l->chosen.logprob) : json_null());
    json_t *top = json_null();
    if (l) {
        top = json_object();
        for (int k = 0; k < l->n_top && k < want_top; k++) {
            char *tt;
            size_t tn;
            oai_token_text(tok, l->top[k].token, &tt, &tn);
            json_t *key = oai_json_str(tt ? tt : "", tn);
            if (key && !json_object_get(top, json_string_value(key)))
                json_object_set_new(top, json_string_value(key),
                                    oai_json_logprob(l->top[k].logprob));
            json_decref(key);
            free(tt);
        }
    }
    json_array_append_new(json_object_get(obj, "top_logprobs"), top);
    json_array_append_new(json_object_get(obj, "text_offset"), json_integer((json_int_t)offset));
    free(t);
    return n;
}

static void compl_lp_extend(json_t *dst, json_t *src)
{
    const char *keys[] = { "tokens", "token_logprobs", "top_logprobs", "text_offset" };
    for (int i = 0; i < 4; i++)
        json_array_extend(json_object_get(dst, keys[i]), json_object_get(src, keys[i]));
}

/* Completions-style logprobs of a prompt: tokens[0] has none. */
/* The tokenizer that names logprobs' tokens: none with return_tokens_as_token_ids (then
 * oai_token_text writes "token_id:N", as vLLM does). */
static const struct pgd_tokenizer *lp_tokenizer(const struct job *j)
{
    return j->g.token_ids_as_names ? NULL : j->s->model.tokenizer;
}

static json_t *prompt_lp_json(struct job *j, int p, const struct pgd_output *o)
{
    const struct pgd_tokenizer *tok = lp_tokenizer(j);
    const struct oai_prompt *pr = &j->g.prompts[p];
    json_t *obj = compl_lp_new();
    size_t off = 0;
    for (int i = 0; i < pr->n_ids; i++) {
        const struct pgd_token_logprobs *l =
            i > 0 && i - 1 < o->n_prompt_logprobs ? &o->prompt_logprobs[i - 1] : NULL;
        off += compl_lp_add(obj, tok, pr->ids[i], l, j->g.logprobs, off);
    }
    return obj;
}

/* vLLM's prompt_logprobs: [null, {"<id>": {"logprob", "rank", "decoded_token"}, ...}, ...]:
 * per prompt token (the first has none), the token itself and the top alternatives. */
static json_t *prompt_lp_vllm_json(struct job *j, int p, const struct pgd_output *o)
{
    const struct pgd_tokenizer *tok = lp_tokenizer(j);
    json_t *a = json_array();
    json_array_append_new(a, json_null());
    for (int i = 0; i < o->n_prompt_logprobs; i++) {
        const struct pgd_token_logprobs *l = &o->prompt_logprobs[i];
        json_t *pos = json_object();
        for (int k = -1; k < l->n_top && k < j->g.prompt_logprobs; k++) {
            const struct pgd_logprob *x = k < 0 ? &l->chosen : &l->top[k];
            char key[16], *t;
            size_t tn;
            snprintf(key, sizeof key, "%d", (int)x->token);
            if (json_object_get(pos, key))
                continue;
            oai_token_text(tok, x->token, &t, &tn);
            json_object_set_new(pos, key, json_pack("{s:o, s:i, s:o}", "logprob",
                                                    oai_json_logprob(x->logprob), "rank",
                                                    (int)x->rank, "decoded_token",
                                                    oai_json_str(t ? t : "", tn)));
            free(t);
        }
        json_array_append_new(a, pos);
    }
    (void)p;
    return a;
}

/* ---- reading the streams ---------------------------------------------------------------- */

/* 1: *o holds an output of prompt *which; 0: nothing within wait_ms; -1: every stream is
 * finished. */
static int job_next(struct job *j, struct pgd_output *o, int *which, int wait_ms)
{
    int n = j->g.n_prompts;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < n; k++) {
            int i = (j->rr + k) % n;
            if (j->closed[i])
                continue;
            bool wait = pass == 1 && j->n_open > 0;
            enum pgd_status st = pgd_stream_next(j->streams[i], o, wait ? wait_ms : 0);
            if (st == PGD_OK) {
                j->rr = (i + 1) % n;
                *which = i;
                return 1;
            }
            if (st == PGD_ERR_CLOSED) {
                j->closed[i] = true;
                j->n_open--;
            }
            if (wait)
                return j->n_open ? 0 : -1;
        }
        if (j->n_open == 0)
            return -1;
    }
    return 0;
}

/* What is common to both response kinds: usage and logprobs of an output. */
static struct choice *take_output(struct job *j, int p, const struct pgd_output *o)
{
    struct choice *c = &j->ch[p * j->g.sp.n + o->index];
    c->completion_tokens = o->completion_tokens;
    if (o->prompt_tokens > 0)
        j->prompt_tokens[p] = o->prompt_tokens;
    if (o->cached_tokens > j->cached_tokens[p])
        j->cached_tokens[p] = o->cached_tokens;
    if (o->prompt_logprobs && !j->prompt_lp[p] && j->g.echo && j->g.logprobs >= 0)
        j->prompt_lp[p] = prompt_lp_json(j, p, o);
    if (o->prompt_logprobs && !j->prompt_lp_vllm[p] && j->g.prompt_logprobs >= 0)
        j->prompt_lp_vllm[p] = prompt_lp_vllm_json(j, p, o);
    for (int k = 0; o->logprobs && k < o->n_token_ids; k++)
        c->cum_logprob += o->logprobs[k].chosen.logprob;
    if (o->finish_reason != PGD_FINISH_NONE)
        c->finish = o->finish_reason;
    if (o->finish_reason == PGD_FINISH_ABORT)
        j->aborted = true;
    if (o->finish_reason == PGD_FINISH_ERROR && !j->error &&
        !(j->error = strdup(o->error ? o->error : "a sample could not go on")))
        j->aborted = true;          /* out of memory: fails all the same */
    /* For the access log: the request's first token, and its usage so far. */
    if (o->n_token_ids > 0)
        oai_access_note_first_token();
    int prompt = 0, completion = 0;
    for (int i = 0; i < j->g.n_prompts; i++)
        prompt += j->prompt_tokens[i];
    for (int i = 0; i < j->n_ch; i++)
        completion += j->ch[i].completion_tokens;
    oai_access_note_usage(j->id, prompt, completion);
    return c;
}

/* The logprobs of an output's tokens: a chat list of entries or a completions object. */
static json_t *output_lp(struct job *j, struct choice *c, const struct pgd_output *o)
{
    if (j->g.logprobs < 0 || !o->logprobs)
        return NULL;
    const struct pgd_tokenizer *tok = lp_tokenizer(j);
    if (j->g.chat) {
        json_t *a = json_array();
        for (int k = 0; k < o->n_token_ids; k++)
            json_array_append_new(a, chat_lp_entry(tok, &o->logprobs[k], j->g.logprobs));
        return a;
    }
    json_t *obj = compl_lp_new();
    for (int k = 0; k < o->n_token_ids; k++)
        c->offset += compl_lp_add(obj, tok, o->token_ids[k], &o->logprobs[k], j->g.logprobs,
                                  c->offset);
    return obj;
}

static const char *finish_str(enum pgd_finish_reason r)
{
    return r == PGD_FINISH_LENGTH ? "length" : r == PGD_FINISH_STOP ? "stop" : NULL;
}

static json_t *usage_json(struct job *j)
{
    long long prompt = 0, completion = 0, cached = 0;
    for (int p = 0; p < j->g.n_prompts; p++) {
        prompt += j->prompt_tokens[p];
        cached += j->cached_tokens[p];
    }
    for (int i = 0; i < j->n_ch; i++)
        completion += j->ch[i].completion_tokens;
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt,
                     "completion_tokens", (json_int_t)completion, "total_tokens",
                     (json_int_t)(prompt + completion), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)cached);
}

static json_t *envelope(struct job *j, bool chunk)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:n}", "id", j->id, "object",
                     j->g.chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                               : "text_completion",
                     "created", (json_int_t)j->created, "model", j->s->model_name,
                     "system_fingerprint");
}

/* ---- chat answers: reasoning, tool calls ------------------------------------------------ */

static bool constrained_tools(const struct job *j)
{
    return j->g.tool_choice == OAI_TOOLS_REQUIRED || j->g.tool_choice == OAI_TOOLS_NAMED;
}

void oai_post_feed(struct job *j, struct choice *c, const char *t, size_t n, bool final,
                   struct pgd__buf *r, struct pgd__buf *ct)
{
    c->rs.kind = j->g.chat ? j->s->cfg.reasoning_parser : OAI_RP_NONE;
    c->ts.kind = j->g.tool_choice == OAI_TOOLS_AUTO ? j->s->cfg.tool_call_parser : OAI_TP_NONE;
    struct pgd__buf mid = { 0 };
    oai_reasoning_feed(&c->rs, t ? t : "", n, final, r, &mid);
    if (constrained_tools(j)) {
        pgd__buf_append(&c->text, mid.p, mid.len);   /* the whole answer is the calls */
        if (final && !oai_tool_calls_from_constrained(c->text.p ? c->text.p : "", c->text.len,
                                                      j->g.tool_name, &c->calls, &c->n_calls)) {
            PGD_WARN("frontend.openai: %s: the output is not the tool calls its schema asked "
                     "for; answered as content (is constrained decoding in this build?)",
                     j->id);
            pgd__buf_append(ct, c->text.p, c->text.len);
        }
    } else
        oai_tool_stream_feed(&c->ts, mid.p ? mid.p : "", mid.len, final, ct, &c->calls,
                             &c->n_calls);
    pgd__buf_fini(&mid);
    if (!j->g.parallel_tool_calls && c->n_calls > 1) {
        oai_tool_calls_free(c->calls + 1, c->n_calls - 1);
        c->n_calls = 1;
    }
}

static json_t *tool_call_json(struct job *j, const struct oai_tool_call *tc, int index,
                              bool streamed)
{
    char id[48];
    oai_make_id(j->s, "call_", id, sizeof id);
    json_t *fn = json_pack("{s:s, s:s}", "name", tc->name, "arguments",
                           streamed ? "" : tc->arguments);
    json_t *call = json_pack("{s:s, s:s, s:o}", "id", id, "type", "function", "function", fn);
    if (streamed)
        json_object_set_new(call, "index", json_integer(index));
    return call;
}

static const char *choice_finish(const struct choice *c)
{
    if (c->n_calls > 0 && c->finish == PGD_FINISH_STOP)
        return "tool_calls";
    return finish_str(c->finish);
}

bool oai_blank(const struct pgd__buf *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->p[i] != ' ' && b->p[i] != '\t' && b->p[i] != '\r' && b->p[i] != '\n')
            return false;
    return true;
}

/* The message of a plain chat answer: content (the echoed message first), reasoning_content
 * (with a reasoning parser), tool_calls. */
static json_t *chat_message(struct job *j, struct choice *c)
{
    struct pgd__buf raw = c->text;
    c->text = (struct pgd__buf){ 0 };
    oai_post_feed(j, c, raw.p, raw.len, true, &c->reasoning, &c->content);
    pgd__buf_fini(&raw);
    struct pgd__buf text = { 0 };
    if (j->g.echo_text)
        pgd__buf_append(&text, j->g.echo_text, j->g.echo_len);
    pgd__buf_append(&text, c->content.p, c->content.len);
    json_t *content = c->n_calls > 0 && oai_blank(&text) ? json_null()
                      : oai_json_str(text.p ? text.p : "", text.len);
    pgd__buf_fini(&text);
    json_t *msg = json_pack("{s:s, s:o, s:n}", "role", j->s->cfg.response_role, "content",
                            content, "refusal");
    if (j->s->cfg.reasoning_parser != OAI_RP_NONE && j->g.include_reasoning)
        json_object_set_new(msg, "reasoning_content",
                            c->reasoning.len ? oai_json_str(c->reasoning.p, c->reasoning.len)
                                             : json_null());
    if (c->n_calls > 0) {
        json_t *calls = json_array();
        for (int k = 0; k < c->n_calls; k++)
            json_array_append_new(calls, tool_call_json(j, &c->calls[k], k, false));
        json_object_set_new(msg, "tool_calls", calls);
    }
    return msg;
}

/* best_of: the choices of prompt p returned, best cumulative logprob first. */
static void rank_choices(struct job *j, int p, int *order)
{
    int n = j->g.sp.n;
    for (int i = 0; i < n; i++)
        order[i] = p * n + i;
    if (!j->g.best_of)
        return;
    for (int i = 1; i < n; i++)      /* insertion sort: n is small */
        for (int k = i; k > 0 && j->ch[order[k]].cum_logprob > j->ch[order[k - 1]].cum_logprob;
             k--) {
            int t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
}

/* ---- plain (non-streaming) responses ------------------------------------------------- */

static void plain_take(struct job *j, int p, const struct pgd_output *o)
{
    struct choice *c = take_output(j, p, o);
    if (!c->started) {
        c->started = true;
        if (j->g.echo && j->g.prompts[p].text) {
            pgd__buf_append(&c->text, j->g.prompts[p].text, j->g.prompts[p].text_len);
            c->offset = c->text.len;
        }
    }
    pgd__buf_append(&c->text, o->text ? o->text : "", o->text_len);
    json_t *lp = output_lp(j, c, o);
    if (lp) {
        if (!c->lp)
            c->lp = j->g.chat ? json_array() : compl_lp_new();
        if (j->g.chat)
            json_array_extend(c->lp, lp);
        else
            compl_lp_extend(c->lp, lp);
        json_decref(lp);
    }
}

static json_t *plain_choice(struct job *j, int i, int index)
{
    struct choice *c = &j->ch[i];
    int p = i / j->g.sp.n;
    json_t *lp = json_null();
    if (j->g.logprobs >= 0) {
        if (j->g.chat)
            lp = json_pack("{s:O, s:n}", "content", c->lp ? c->lp : json_array(), "refusal");
        else {
            lp = j->prompt_lp[p] ? json_deep_copy(j->prompt_lp[p]) : compl_lp_new();
            if (c->lp)      /* generated offsets already count the echoed text */
                compl_lp_extend(lp, c->lp);
        }
    }
    json_t *ch;
    if (j->g.chat) {
        json_t *msg = chat_message(j, c);
        const char *fin = choice_finish(c);
        ch = json_pack("{s:i, s:o, s:o, s:o}", "index", index, "message", msg, "logprobs", lp,
                       "finish_reason", fin ? json_string(fin) : json_null());
    } else {
        const char *fin = finish_str(c->finish);
        ch = json_pack("{s:i, s:o, s:o, s:o}", "index", index, "text",
                       oai_json_str(c->text.p ? c->text.p : "", c->text.len), "logprobs", lp,
                       "finish_reason", fin ? json_string(fin) : json_null());
        if (j->g.prompt_logprobs >= 0)
            json_object_set(ch, "prompt_logprobs",
                            j->prompt_lp_vllm[p] ? j->prompt_lp_vllm[p] : json_null());
    }
    return ch;
}

static json_t *plain_body(struct job *j)
{
    json_t *body = envelope(j, false);
    json_t *choices = json_array();
    int n = j->g.sp.n, index = 0;
    int *order = malloc((size_t)n * sizeof *order);
    for (int p = 0; order && p < j->g.n_prompts; p++) {
        rank_choices(j, p, order);
        for (int k = 0; k < j->g.n_return; k++)
            json_array_append_new(choices, plain_choice(j, order[k], index++));
    }
    free(order);
    json_object_set_new(body, "choices", choices);
    json_object_set_new(body, "usage", usage_json(j));
    if (j->g.chat && j->g.prompt_logprobs >= 0)
        json_object_set(body, "prompt_logprobs",
                        j->prompt_lp_vllm[0] ? j->prompt_lp_vllm[0] : json_null());
    return body;
}

static enum MHD_Result run_plain(struct job *j)
{
    struct oai_server *s = j->s;
    struct pgd_output o;
    int which, r;
    struct timespec last;
    clock_gettime(CLOCK_MONOTONIC, &last);
    while ((r = job_next(j, &o, &which, WAIT_MS)) >= 0) {
        if (r == 1)
            plain_take(j, which, &o);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (r == 0 || (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000
                          >= WAIT_MS) {
            last = now;
            if (oai_client_gone(j->conn)) {
                PGD_DEBUG("frontend.openai: %s: the client went away; aborting", j->id);
                job_free(j);
                return MHD_NO;
            }
            if (atomic_load(&s->aborting)) {
                /* Read what the answer needs before the job goes (it owns g). */
                struct MHD_Connection *c = j->conn;
                enum oai_route route = gen_route(&j->g);
                job_free(j);
                return oai_respond_error(s, c, route, 503, "service_unavailable", NULL, NULL,
                                         "The server shut down before the request finished");
            }
        }
    }
    enum oai_route route = gen_route(&j->g);
    struct MHD_Connection *c = j->conn;
    if (j->aborted) {
        job_free(j);
        return oai_respond_error(s, c, route, 500, "internal_error", NULL, NULL,
                                 "The request was aborted by the engine");
    }
    if (j->error) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", j->error);
        job_free(j);
        return oai_respond_error(s, c, route, 400, "invalid_request_error", NULL, NULL, msg);
    }
    json_t *body = j->g.api == OAI_API_RESPONSES ? oai_responses_plain_body(j) : plain_body(j);
    job_free(j);
    return oai_respond_json(s, c, route, 200, body);
}

/* ---- streaming responses ------------------------------------------------------------- */

static void sse_json(struct job *j, json_t *obj)
{
    char *t = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!t) {
        j->out.failed = true;
        return;
    }
    pgd__buf_append(&j->out, "data: ", 6);
    pgd__buf_append(&j->out, t, strlen(t));
    pgd__buf_append(&j->out, "\n\n", 2);
    free(t);
}

static void sse_chunk(struct job *j, json_t *choice)
{
    json_t *env = envelope(j, true);
    json_object_set_new(env, "choices", json_pack("[o]", choice));
    if (j->g.include_usage)
        json_object_set_new(env, "usage", j->g.continuous_usage ? usage_json(j) : json_null());
    sse_json(j, env);
}

static void sse_error(struct job *j, int status, const char *type, const char *msg)
{
    json_t *e = oai_error_json(type, NULL, NULL, msg);
    json_object_set_new(json_object_get(e, "error"), "code", json_integer(status));
    sse_json(j, e);
}

/* A chat chunk of choice index: delta (stolen), logprobs (stolen, may be NULL), finish. */
static void chat_chunk(struct job *j, int index, json_t *delta, json_t *lp, const char *fin)
{
    sse_chunk(j, json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta, "logprobs",
                           lp ? json_pack("{s:o, s:n}", "content", lp, "refusal") : json_null(),
                           "finish_reason", fin ? json_string(fin) : json_null()));
}

/* Chat deltas: the role first, then reasoning_content / content as the parsers release
 * them, each tool call as OpenAI streams it (its id, type and name with empty arguments,
 * then the arguments), and the finish reason on the last chunk. */
static void stream_take_chat(struct job *j, struct choice *c, int index,
                             const struct pgd_output *o)
{
    if (!c->started) {
        c->started = true;
        json_t *first = j->g.echo_text ? oai_json_str(j->g.echo_text, j->g.echo_len)
                                       : json_string("");
        chat_chunk(j, index, json_pack("{s:s, s:o}", "role", j->s->cfg.response_role,
                                       "content", first), NULL, NULL);
    }
    if (o->finish_reason == PGD_FINISH_ABORT || o->finish_reason == PGD_FINISH_ERROR)
        return;
    bool final = o->finish_reason != PGD_FINISH_NONE;
    struct pgd__buf r = { 0 }, ct = { 0 };
    oai_post_feed(j, c, o->text, o->text_len, final, &r, &ct);
    json_t *lp = output_lp(j, c, o);
    json_t *delta = json_object();
    if (r.len && j->g.include_reasoning)
        json_object_set_new(delta, "reasoning_content", oai_json_str(r.p, r.len));
    if (ct.len)
        json_object_set_new(delta, "content", oai_json_str(ct.p, ct.len));
    pgd__buf_fini(&r);
    pgd__buf_fini(&ct);
    /* The finish reason rides on the last text chunk, or after the calls when there are. */
    bool calls_pending = c->n_calls_sent < c->n_calls;
    const char *fin = final && !calls_pending ? choice_finish(c) : NULL;
    if (json_object_size(delta) || lp || fin)
        chat_chunk(j, index, delta, lp, fin);
    else
        json_decref(delta);
    for (; c->n_calls_sent < c->n_calls; c->n_calls_sent++) {
        int k = c->n_calls_sent;
        chat_chunk(j, index, json_pack("{s:[o]}", "tool_calls",
                                       tool_call_json(j, &c->calls[k], k, true)), NULL, NULL);
        chat_chunk(j, index, json_pack("{s:[{s:i, s:{s:s}}]}", "tool_calls", "index", k,
                                       "function", "arguments", c->calls[k].arguments),
                   NULL, NULL);
    }
    if (final && calls_pending)
        chat_chunk(j, index, json_object(), NULL, choice_finish(c));
}

static void stream_take(struct job *j, int p, const struct pgd_output *o)
{
    struct choice *c = take_output(j, p, o);
    int index = p * j->g.sp.n + o->index;
    if (j->g.api == OAI_API_RESPONSES) {
        oai_responses_stream_take(j, c, o);
        return;
    }
    if (j->g.chat) {
        stream_take_chat(j, c, index, o);
        return;
    }
    struct pgd__buf text = { 0 };
    json_t *lp = NULL;
    if (!c->started) {
        c->started = true;
        if (j->g.echo && j->g.prompts[p].text) {
            pgd__buf_append(&text, j->g.prompts[p].text, j->g.prompts[p].text_len);
            c->offset = text.len;
            if (j->prompt_lp[p])
                lp = json_deep_copy(j->prompt_lp[p]);
        }
    }
    if (o->finish_reason == PGD_FINISH_ABORT || o->finish_reason == PGD_FINISH_ERROR) {
        pgd__buf_fini(&text);
        json_decref(lp);
        return;
    }
    pgd__buf_append(&text, o->text ? o->text : "", o->text_len);
    json_t *olp = output_lp(j, c, o);
    if (olp && lp) {
        compl_lp_extend(lp, olp);
        json_decref(olp);
    } else if (olp)
        lp = olp;
    const char *fin = finish_str(o->finish_reason);
    if (text.len == 0 && !lp && !fin) {
        pgd__buf_fini(&text);
        return;
    }
    json_t *jt = oai_json_str(text.p ? text.p : "", text.len);
    pgd__buf_fini(&text);
    sse_chunk(j, json_pack("{s:i, s:o, s:o, s:o}", "index", index, "text", jt, "logprobs",
                           lp ? lp : json_null(), "finish_reason",
                           fin ? json_string(fin) : json_null()));
}

/* Fills j->out with the next SSE bytes; false when the client is gone. */
static bool stream_fill(struct job *j)
{
    struct oai_server *s = j->s;
    struct pgd_output o;
    int which;
    while (j->out.len == j->out_pos && !j->eof) {
        j->out.len = j->out_pos = 0;
        int r = job_next(j, &o, &which, WAIT_MS);
        if (r == 1) {
            stream_take(j, which, &o);
            if (j->aborted || j->error) {
                streams_destroy(j);
                if (j->aborted)
                    sse_error(j, 503, "service_unavailable", "The request was aborted");
                else
                    sse_error(j, 400, "invalid_request_error", j->error);
                pgd__buf_append(&j->out, "data: [DONE]\n\n", 14);
                j->eof = true;
            }
        } else if (r < 0) {
            if (j->g.include_usage) {
                json_t *env = envelope(j, true);
                json_object_set_new(env, "choices", json_array());
                json_object_set_new(env, "usage", usage_json(j));
                sse_json(j, env);
            }
            if (j->g.api != OAI_API_RESPONSES)   /* the Responses API ends with its event */
                pgd__buf_append(&j->out, "data: [DONE]\n\n", 14);
            j->eof = true;
        }
        if (r == 0 || j->out.len == 0) {
            if (oai_client_gone(j->conn)) {
                PGD_DEBUG("frontend.openai: %s: the client went away mid-stream; aborting",
                          j->id);
                streams_destroy(j);
                return false;
            }
            if (atomic_load(&s->aborting) && !j->eof) {
                streams_destroy(j);
                sse_error(j, 503, "service_unavailable",
                          "The server shut down before the request finished");
                pgd__buf_append(&j->out, "data: [DONE]\n\n", 14);
                j->eof = true;
            }
        }
        if (j->out.failed) {
            streams_destroy(j);
            return false;
        }
    }
    return true;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct job *j = cls;
    if (!stream_fill(j))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t avail = j->out.len - j->out_pos;
    if (avail == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = avail < max ? avail : max;
    memcpy(buf, j->out.p + j->out_pos, n);
    j->out_pos += n;
    oai_conn_sending(j->s, j->conn);   /* the client has write_timeout to take these */
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    job_free(cls);
}

static enum MHD_Result run_stream(struct job *j)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                                  stream_read, j, stream_free);
    if (!resp) {
        job_free(j);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    /* The job is freed with the response (stream_free). */
    return oai_queue(j->s, j->conn, gen_route(&j->g), 200, resp);
}

/* ---- submit ---------------------------------------------------------------------------- */

enum MHD_Result oai_gen_run(struct oai_server *s, struct MHD_Connection *c, struct oai_gen *g)
{
    enum oai_route route = gen_route(g);
    struct job *j = calloc(1, sizeof *j);
    int np = g->n_prompts, nc = g->n_prompts * g->sp.n;
    if (j) {
        j->g = *g;
        memset(g, 0, sizeof *g);
        if (j->g.sp.n_stop > 0)    /* it pointed into *g */
            j->g.sp.stop = (const char *const *)j->g.stop_buf;
        j->s = s;
        j->conn = c;
        j->streams = calloc((size_t)np, sizeof *j->streams);
        j->closed = calloc((size_t)np, sizeof *j->closed);
        j->ch = calloc((size_t)nc, sizeof *j->ch);
        j->prompt_lp = calloc((size_t)np, sizeof *j->prompt_lp);
        j->prompt_lp_vllm = calloc((size_t)np, sizeof *j->prompt_lp_vllm);
        j->prompt_tokens = calloc((size_t)np, sizeof *j->prompt_tokens);
        j->cached_tokens = calloc((size_t)np, sizeof *j->cached_tokens);
        j->n_ch = nc;
    } else
        oai_gen_fini(g);
    if (!j || !j->streams || !j->closed || !j->ch || !j->prompt_lp || !j->prompt_lp_vllm ||
        !j->prompt_tokens ||
        !j->cached_tokens) {
        job_free(j);
        return oai_respond_error(s, c, route, 500, "internal_error", NULL, NULL,
                                 "out of memory");
    }
    const char *prefix = j->g.api == OAI_API_RESPONSES ? "resp_"
                         : j->g.chat ? "chatcmpl-" : "cmpl-";
    if (j->g.request_id)     /* vLLM: the client's request_id names the response */
        snprintf(j->id, sizeof j->id, "%s%s", prefix, j->g.request_id);
    else
        oai_make_id(s, prefix, j->id, sizeof j->id);
    j->created = time(NULL);
    for (int i = 0; i < np; i++) {
        struct pgd_request_params rp = pgd_request_default_params();
        rp.prompt_ids = j->g.prompts[i].ids;
        rp.n_prompt_ids = j->g.prompts[i].n_ids;
        rp.sampling = j->g.sp;
        rp.detokenize = s->model.tokenizer != NULL;
        rp.priority = j->g.priority;
        rp.cache_salt = j->g.cache_salt;
        char err[512];
        enum pgd_status st = pgd_engine_submit(s->model.engine, &rp, &j->streams[i], err,
                                               sizeof err);
        if (st != PGD_OK) {
            job_free(j);
            if (st == PGD_ERR_INVALID_ARG || st == PGD_ERR_UNSUPPORTED)
                return oai_respond_error(s, c, route, 400, "invalid_request_error", NULL, NULL,
                                         err);
            if (st == PGD_ERR_CLOSED)
                return oai_respond_error(s, c, route, 503, "service_unavailable", NULL, NULL,
                                         err);
            return oai_respond_error(s, c, route, 500, "internal_error", NULL, NULL, err);
        }
        j->n_open++;
    }
    return j->g.stream ? run_stream(j) : run_plain(j);
}
