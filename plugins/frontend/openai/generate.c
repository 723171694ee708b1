/* Running a completion or chat request on the engine and answering it: one engine request
 * per prompt (each with n samples), outputs read from their streams round-robin, and either
 * one JSON response at the end or a Server-Sent Events stream of chunks ending with
 * `data: [DONE]`.
 *
 * A client that goes away is noticed within WAIT_MS (the connection's socket is polled for
 * a hang-up between outputs): its engine requests are aborted at once, which frees their KV
 * blocks. A stream whose client takes none of its bytes for write_timeout seconds has its
 * connection closed by libmicrohttpd (see oai_conn_sending), which frees the job and so
 * aborts its engine requests. When the server's grace period ends, running requests are
 * aborted too: a stream then ends with an error chunk, a plain request with a 503. */
#include "plugins/frontend/openai/oai.h"
#include <pagoda/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 20                 /* longest wait on a stream before checking the client */

struct choice {
    struct pgd__buf text;           /* plain responses: the generated text so far */
    json_t *lp;                    /* plain responses: chat: [entries]; completions: {tokens,
                                      token_logprobs, top_logprobs, text_offset} */
    size_t offset;                 /* completions: text_offset of the next token */
    enum pgd_finish_reason finish;
    int completion_tokens;
    bool started;
};

struct job {
    struct oai_server *s;
    struct MHD_Connection *conn;
    struct oai_gen g;
    struct pgd_stream **streams;   /* [g.n_prompts], owned */
    bool *closed;                  /* [g.n_prompts] */
    int n_open, rr;
    struct choice *ch;             /* [g.n_prompts * g.sp.n] */
    int n_ch;
    json_t **prompt_lp;            /* [g.n_prompts]: completions-style prompt logprobs (echo) */
    int *prompt_tokens, *cached_tokens;   /* [g.n_prompts] */
    char id[64];
    time_t created;
    bool aborted;                  /* some sample ended with PGD_FINISH_ABORT */
    /* streaming */
    struct pgd__buf out;
    size_t out_pos;
    bool eof;
};

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
    for (int i = 0; i < j->n_ch; i++) {
        pgd__buf_fini(&j->ch[i].text);
        json_decref(j->ch[i].lp);
    }
    for (int i = 0; j->prompt_lp && i < j->g.n_prompts; i++)
        json_decref(j->prompt_lp[i]);
    free(j->prompt_lp);
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
    return j->s->cfg.return_tokens_as_token_ids ? NULL : j->s->model.tokenizer;
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
    if (o->finish_reason != PGD_FINISH_NONE)
        c->finish = o->finish_reason;
    if (o->finish_reason == PGD_FINISH_ABORT)
        j->aborted = true;
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

/* ---- plain (non-streaming) responses ------------------------------------------------- */

static void plain_take(struct job *j, int p, const struct pgd_output *o)
{
    struct choice *c = take_output(j, p, o);
    if (!c->started) {
        c->started = true;
        if (j->g.echo && j->g.prompts[p].text) {
            pgd__buf_append(&c->text, j->g.prompts[p].text, strlen(j->g.prompts[p].text));
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

static json_t *plain_body(struct job *j)
{
    json_t *body = envelope(j, false);
    json_t *choices = json_array();
    for (int i = 0; i < j->n_ch; i++) {
        struct choice *c = &j->ch[i];
        int p = i / j->g.sp.n;
        json_t *text = oai_json_str(c->text.p ? c->text.p : "", c->text.len);
        json_t *lp = json_null();
        if (j->g.logprobs >= 0) {
            if (j->g.chat)
                lp = json_pack("{s:O, s:n}", "content", c->lp ? c->lp : json_array(),
                               "refusal");
            else {
                lp = j->prompt_lp[p] ? json_deep_copy(j->prompt_lp[p]) : compl_lp_new();
                if (c->lp) {
                    /* generated offsets already count the echoed text */
                    compl_lp_extend(lp, c->lp);
                }
            }
        }
        const char *fin = finish_str(c->finish);
        if (j->g.chat)
            json_array_append_new(choices, json_pack(
                "{s:i, s:{s:s, s:o, s:n}, s:o, s:o}", "index", i, "message", "role",
                j->s->cfg.response_role,
                "content", text, "refusal", "logprobs", lp, "finish_reason",
                fin ? json_string(fin) : json_null()));
        else
            json_array_append_new(choices, json_pack(
                "{s:i, s:o, s:o, s:o}", "index", i, "text", text, "logprobs", lp,
                "finish_reason", fin ? json_string(fin) : json_null()));
    }
    json_object_set_new(body, "choices", choices);
    json_object_set_new(body, "usage", usage_json(j));
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
                enum oai_route route = j->g.chat ? R_CHAT : R_COMPLETIONS;
                job_free(j);
                return oai_respond_error(s, c, route, 503, "service_unavailable", NULL, NULL,
                                         "The server shut down before the request finished");
            }
        }
    }
    enum oai_route route = j->g.chat ? R_CHAT : R_COMPLETIONS;
    struct MHD_Connection *c = j->conn;
    if (j->aborted) {
        job_free(j);
        return oai_respond_error(s, c, route, 500, "internal_error", NULL, NULL,
                                 "The request was aborted by the engine");
    }
    json_t *body = plain_body(j);
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
        json_object_set_new(env, "usage", json_null());
    sse_json(j, env);
}

static void sse_error(struct job *j, int status, const char *type, const char *msg)
{
    json_t *e = oai_error_json(type, NULL, NULL, msg);
    json_object_set_new(json_object_get(e, "error"), "code", json_integer(status));
    sse_json(j, e);
}

static void stream_take(struct job *j, int p, const struct pgd_output *o)
{
    struct choice *c = take_output(j, p, o);
    int index = p * j->g.sp.n + o->index;
    struct pgd__buf text = { 0 };
    json_t *lp = NULL;
    if (!c->started) {
        c->started = true;
        if (j->g.chat)
            sse_chunk(j, json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", index, "delta",
                                   "role", j->s->cfg.response_role, "content", "", "logprobs",
                                   "finish_reason"));
        else if (j->g.echo && j->g.prompts[p].text) {
            pgd__buf_append(&text, j->g.prompts[p].text, strlen(j->g.prompts[p].text));
            c->offset = text.len;
            if (j->prompt_lp[p])
                lp = json_deep_copy(j->prompt_lp[p]);
        }
    }
    if (o->finish_reason == PGD_FINISH_ABORT) {
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
    json_t *jfin = fin ? json_string(fin) : json_null();
    json_t *jlp = lp ? (j->g.chat ? json_pack("{s:o, s:n}", "content", lp, "refusal") : lp)
                     : json_null();
    if (j->g.chat) {
        json_t *delta = json_object();
        if (json_string_length(jt) > 0 || !fin)
            json_object_set_new(delta, "content", jt);
        else
            json_decref(jt);
        sse_chunk(j, json_pack("{s:i, s:o, s:o, s:o}", "index", index, "delta", delta,
                               "logprobs", jlp, "finish_reason", jfin));
    } else
        sse_chunk(j, json_pack("{s:i, s:o, s:o, s:o}", "index", index, "text", jt, "logprobs",
                               jlp, "finish_reason", jfin));
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
            if (j->aborted) {
                streams_destroy(j);
                sse_error(j, 503, "service_unavailable", "The request was aborted");
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
    return oai_queue(j->s, j->conn, j->g.chat ? R_CHAT : R_COMPLETIONS, 200, resp);
}

/* ---- submit ---------------------------------------------------------------------------- */

enum MHD_Result oai_gen_run(struct oai_server *s, struct MHD_Connection *c, struct oai_gen *g)
{
    enum oai_route route = g->chat ? R_CHAT : R_COMPLETIONS;
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
        j->prompt_tokens = calloc((size_t)np, sizeof *j->prompt_tokens);
        j->cached_tokens = calloc((size_t)np, sizeof *j->cached_tokens);
        j->n_ch = nc;
    } else
        oai_gen_fini(g);
    if (!j || !j->streams || !j->closed || !j->ch || !j->prompt_lp || !j->prompt_tokens ||
        !j->cached_tokens) {
        job_free(j);
        return oai_respond_error(s, c, route, 500, "internal_error", NULL, NULL,
                                 "out of memory");
    }
    oai_make_id(s, j->g.chat ? "chatcmpl-" : "cmpl-", j->id, sizeof j->id);
    j->created = time(NULL);
    for (int i = 0; i < np; i++) {
        struct pgd_request_params rp = pgd_request_default_params();
        rp.prompt_ids = j->g.prompts[i].ids;
        rp.n_prompt_ids = j->g.prompts[i].n_ids;
        rp.sampling = j->g.sp;
        rp.detokenize = s->model.tokenizer != NULL;
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
