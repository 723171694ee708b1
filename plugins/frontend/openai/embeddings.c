/* POST /v1/embeddings on a server of task embed (--task embed, --runner pooling): vLLM's
 * EmbeddingRequest read and checked (input as a string, a list of strings, a list of token
 * ids or a list of such lists; encoding_format float or base64; dimensions refused, as vLLM
 * refuses it for a model without Matryoshka training; user; truncate_prompt_tokens;
 * add_special_tokens; priority; normalize), one pooling request per input on the engine,
 * and the answer OpenAI's shape: {object: "list", data: [{object: "embedding", index,
 * embedding}], model, usage: {prompt_tokens, total_tokens}}. Also the 400s that tell a
 * client it called the wrong kind of server (generation on an embed server, embeddings on
 * a generating one), and the task fields /v1/models shows. */
#include "oai.h"
#include <pagoda/engine.h>
#include <pagoda/log.h>
#include <pagoda/tokenizer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMB_MAX_INPUTS 2048        /* OpenAI's limit of inputs in one request */
#define EMB_WAIT_MS 100            /* between looks at the client and the shutdown */

/* One request, parsed. */
struct emb_req {
    struct oai_prompt *in;         /* [n], owned (text unused) */
    int n;
    bool base64;                   /* encoding_format "base64" */
    int truncate;                  /* keep the last `truncate` tokens; 0: keep all */
    bool add_special;              /* add_special_tokens (default true) */
    int priority;
    int normalize;                 /* -1: the server's pooler_config; 0, 1 */
};

static void emb_fini(struct emb_req *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->in[i].ids);
    free(q->in);
}

/* ---- reading the request ----------------------------------------------------------------- */

/* Appends one input (ids [n] malloc'd, taken). */
static void add_input(struct emb_req *q, int32_t *ids, int n)
{
    q->in[q->n].ids = ids;
    q->in[q->n].n_ids = n;
    q->n++;
}

/* A list of token ids (each an integer in int32's range; the engine checks the vocabulary)
 * as one input; what: "input" or "input[i]". */
static bool token_list(json_t *a, struct emb_req *q, const char *what, struct oai_error *e)
{
    size_t n = json_array_size(a), i;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    json_t *v;
    if (!ids) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    json_array_foreach(a, i, v) {
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (x < 0 || x > INT32_MAX) {
            free(ids);
            OAI_BAD(e, "input", "'%s' must hold token ids (non-negative integers); item %zu "
                    "is not one", what, i);
            return false;
        }
        ids[i] = (int32_t)x;
    }
    add_input(q, ids, (int)n);
    return true;
}

/* A text input tokenized (add_special_tokens as asked). */
static bool text_input(struct oai_server *s, const char *text, size_t len, struct emb_req *q,
                       struct oai_error *e)
{
    if (!s->model.tokenizer) {
        OAI_BAD(e, "input", "This model has no tokenizer: send token ids as input");
        return false;
    }
    struct pgd_tokens t = { 0 };
    char err[256];
    if (pgd_tokenizer_encode(s->model.tokenizer, text, len, q->add_special, &t, err,
                             sizeof err) != PGD_OK) {
        pgd_tokens_fini(&t);
        OAI_BAD(e, "input", "input: %s", err);
        return false;
    }
    add_input(q, t.ids, (int)t.n);    /* the ids move into the input */
    return true;
}

/* input: a string, or a non-empty list of strings, of token ids, or of token-id lists. */
static bool read_input(struct oai_server *s, json_t *in, struct emb_req *q, struct oai_error *e)
{
    size_t n = json_is_array(in) ? json_array_size(in) : 1;
    if (!in || (!json_is_string(in) && !json_is_array(in)) || n == 0) {
        OAI_BAD(e, "input", "'input' must be a string, a list of strings, a list of token "
                "ids or a list of token-id lists, and not empty");
        return false;
    }
    json_t *first = json_is_array(in) ? json_array_get(in, 0) : in;
    bool one_id_list = json_is_integer(first);
    if (!one_id_list && n > EMB_MAX_INPUTS) {
        OAI_BAD(e, "input", "'input' holds %zu inputs; at most %d", n, EMB_MAX_INPUTS);
        return false;
    }
    q->in = calloc(one_id_list ? 1 : n, sizeof *q->in);
    if (!q->in) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    if (json_is_string(in))
        return text_input(s, json_string_value(in), json_string_length(in), q, e);
    if (one_id_list)
        return token_list(in, q, "input", e);
    size_t i;
    json_t *v;
    json_array_foreach(in, i, v) {
        char what[32];
        snprintf(what, sizeof what, "input[%zu]", i);
        bool ok = json_is_string(v) ? text_input(s, json_string_value(v),
                                                 json_string_length(v), q, e)
                  : json_is_array(v) ? token_list(v, q, what, e)
                                     : (OAI_BAD(e, "input", "'%s' must be a string or a list "
                                                "of token ids", what), false);
        if (!ok)
            return false;
    }
    return true;
}

/* The fields vLLM's EmbeddingRequest has that pagoda reads; others are logged (as vLLM
 * logs the fields it ignores), `messages` is refused. */
static const char *const known_fields[] = {
    "model", "input", "encoding_format", "dimensions", "user", "truncate_prompt_tokens",
    "add_special_tokens", "priority", "normalize", NULL,
};

static bool known(const char *key)
{
    for (int i = 0; known_fields[i]; i++)
        if (!strcmp(key, known_fields[i]))
            return true;
    return false;
}

/* The scalar fields (all but input). */
static bool read_options(struct oai_server *s, json_t *b, struct emb_req *q, struct oai_error *e)
{
    json_t *v;
    if ((v = json_object_get(b, "model")) && !json_is_null(v) &&
        (!json_is_string(v) || !oai_model_known(s, json_string_value(v)))) {
        oai_err_set(e, 404, "invalid_request_error", "model", "model_not_found",
                    "The model `%.200s` does not exist (this server serves `%.200s`)",
                    json_is_string(v) ? json_string_value(v) : "?", s->model_name);
        return false;
    }
    if ((v = json_object_get(b, "encoding_format")) && !json_is_null(v)) {
        const char *f = json_string_value(v);
        if (!f || (strcmp(f, "float") && strcmp(f, "base64"))) {
            OAI_BAD(e, "encoding_format", "'encoding_format' must be 'float' or 'base64'");
            return false;
        }
        q->base64 = !strcmp(f, "base64");
    }
    if ((v = json_object_get(b, "dimensions")) && !json_is_null(v)) {
        /* vLLM's answer for a model without Matryoshka training (pagoda's decoders). */
        OAI_BAD(e, "dimensions", "Model \"%.200s\" does not support matryoshka representation, "
                "changing output dimensions will lead to poor results.", s->model_name);
        return false;
    }
    if ((v = json_object_get(b, "user")) && !json_is_null(v) && !json_is_string(v)) {
        OAI_BAD(e, "user", "'user' must be a string");
        return false;
    }
    q->add_special = true;
    if ((v = json_object_get(b, "add_special_tokens")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            OAI_BAD(e, "add_special_tokens", "'add_special_tokens' must be true or false");
            return false;
        }
        q->add_special = json_is_true(v);
    }
    q->normalize = -1;
    if ((v = json_object_get(b, "normalize")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            OAI_BAD(e, "normalize", "'normalize' must be true or false");
            return false;
        }
        q->normalize = json_is_true(v);
    }
    if ((v = json_object_get(b, "priority")) && !json_is_null(v)) {
        json_int_t p = json_is_integer(v) ? json_integer_value(v) : INT64_MAX;
        if (p < INT32_MIN || p > INT32_MAX) {
            OAI_BAD(e, "priority", "'priority' must be an integer");
            return false;
        }
        q->priority = (int)p;
    }
    if ((v = json_object_get(b, "truncate_prompt_tokens")) && !json_is_null(v)) {
        /* vLLM: -1 is max_model_len; a positive k keeps the last k tokens. */
        json_int_t k = json_is_integer(v) ? json_integer_value(v) : 0;
        if (k == -1)
            k = s->model.max_model_len;
        if (k < 1) {
            OAI_BAD(e, "truncate_prompt_tokens", "'truncate_prompt_tokens' must be -1 or a "
                    "positive integer");
            return false;
        }
        if (k > s->model.max_model_len) {
            OAI_BAD(e, "truncate_prompt_tokens", "truncate_prompt_tokens value (%lld) is "
                    "greater than max_model_len (%d). Please, select a smaller truncation "
                    "size.", (long long)k, s->model.max_model_len);
            return false;
        }
        q->truncate = (int)k;
    }
    return true;
}

/* The whole body into q; unknown fields are logged once, at warning level. */
static bool emb_parse(struct oai_server *s, json_t *b, struct emb_req *q, struct oai_error *e)
{
    memset(q, 0, sizeof *q);
    if (json_object_get(b, "messages")) {
        OAI_BAD(e, "messages", "Chat-style embedding requests ('messages') are not supported: "
                "send 'input'");
        return false;
    }
    if (!read_options(s, b, q, e) || !read_input(s, json_object_get(b, "input"), q, e))
        return false;
    char ignored[256] = "";
    size_t len = 0;
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        if (!known(key) && len < sizeof ignored - 1)
            len += (size_t)snprintf(ignored + len, sizeof ignored - len, "%s%s",
                                    len ? ", " : "", key);
    }
    if (len)
        PGD_WARN("frontend.openai: /v1/embeddings: the request's fields %s are not "
                 "supported and were ignored", ignored);
    for (int i = 0; i < q->n; i++) {
        struct oai_prompt *p = &q->in[i];
        if (q->truncate && p->n_ids > q->truncate) {
            memmove(p->ids, p->ids + (p->n_ids - q->truncate), (size_t)q->truncate *
                    sizeof *p->ids);
            p->n_ids = q->truncate;
        }
        if (p->n_ids > s->model.max_model_len) {
            /* vLLM's words. */
            OAI_BAD(e, "input", "This model's maximum context length is %d tokens. However, "
                    "you requested %d tokens in the input for embedding generation. Please "
                    "reduce the length of the input.", s->model.max_model_len, p->n_ids);
            return false;
        }
    }
    return true;
}

/* ---- the answer ------------------------------------------------------------------------ */

/* v [n] as OpenAI's base64: the little-endian float32 bytes, standard alphabet, padded. */
static json_t *base64_floats(const float *v, int n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4, olen = (nb + 2) / 3 * 4;
    unsigned char *b = malloc(nb ? nb : 1);
    char *o = malloc(olen + 1);
    json_t *j = NULL;
    if (b && o) {
        for (int i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int k = 0; k < 4; k++)
                b[4 * (size_t)i + (size_t)k] = (unsigned char)(u >> (8 * k));
        }
        size_t w = 0;
        for (size_t i = 0; i < nb; i += 3) {
            uint32_t x = (uint32_t)b[i] << 16 | (i + 1 < nb ? (uint32_t)b[i + 1] << 8 : 0) |
                         (i + 2 < nb ? b[i + 2] : 0);
            o[w++] = abc[x >> 18 & 63];
            o[w++] = abc[x >> 12 & 63];
            o[w++] = i + 1 < nb ? abc[x >> 6 & 63] : '=';
            o[w++] = i + 2 < nb ? abc[x & 63] : '=';
        }
        j = json_stringn(o, w);
    }
    free(b);
    free(o);
    return j;
}

/* One data entry: {object: "embedding", index, embedding}. */
static json_t *entry(const struct emb_req *q, int index, const float *v, int n)
{
    json_t *emb = NULL;
    if (q->base64) {
        emb = base64_floats(v, n);
    } else if ((emb = json_array())) {
        for (int i = 0; i < n; i++)
            json_array_append_new(emb, json_real(v[i]));
    }
    return emb ? json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", index,
                           "embedding", emb)
               : NULL;
}

/* Waits for stream st's one output, watching the client and the shutdown: 1 with *o, 0
 * when the client went away, -1 when the server is shutting down. */
static int wait_output(struct oai_server *s, struct MHD_Connection *c, struct pgd_stream *st,
                       struct pgd_output *o)
{
    for (;;) {
        enum pgd_status r = pgd_stream_next(st, o, EMB_WAIT_MS);
        if (r == PGD_OK)
            return 1;
        if (r != PGD_ERR_TIMEOUT || atomic_load(&s->aborting))
            return -1;
        if (oai_client_gone(c))
            return 0;
    }
}

static void destroy_streams(struct pgd_stream **st, int n)
{
    for (int i = 0; i < n; i++)
        pgd_stream_destroy(st[i]);     /* aborts the unfinished */
    free(st);
}

/* Submits every input, then gathers their vectors into the answer. */
static enum MHD_Result emb_run(struct oai_server *s, struct MHD_Connection *c,
                               const struct emb_req *q)
{
    struct pgd_stream **st = calloc(q->n > 0 ? (size_t)q->n : 1, sizeof *st);
    if (!st)
        return oai_respond_error(s, c, R_EMBEDDINGS, 500, "internal_error", NULL, NULL,
                                 "out of memory");
    for (int i = 0; i < q->n; i++) {
        struct pgd_request_params rp = pgd_request_default_params();
        rp.prompt_ids = q->in[i].ids;
        rp.n_prompt_ids = q->in[i].n_ids;
        rp.priority = q->priority;
        rp.normalize = q->normalize;
        rp.detokenize = false;
        char err[512];
        enum pgd_status r = pgd_engine_submit(s->model.engine, &rp, &st[i], err, sizeof err);
        if (r != PGD_OK) {
            destroy_streams(st, i);
            int code = r == PGD_ERR_INVALID_ARG || r == PGD_ERR_UNSUPPORTED ? 400
                       : r == PGD_ERR_CLOSED ? 503 : 500;
            return oai_respond_error(s, c, R_EMBEDDINGS, code,
                                     code == 400 ? "invalid_request_error"
                                     : code == 503 ? "service_unavailable" : "internal_error",
                                     "input", NULL, err);
        }
    }
    json_t *data = json_array();
    long prompt_tokens = 0;
    for (int i = 0; i < q->n && data; i++) {
        struct pgd_output o;
        int w = wait_output(s, c, st[i], &o);
        if (w == 0) {
            destroy_streams(st, q->n);
            json_decref(data);
            return MHD_NO;          /* nobody to answer */
        }
        if (w < 0 || !o.embedding) {
            destroy_streams(st, q->n);
            json_decref(data);
            return w < 0 ? oai_respond_error(s, c, R_EMBEDDINGS, 503, "service_unavailable",
                                             NULL, NULL, "The server shut down before the "
                                             "request finished")
                         : oai_respond_error(s, c, R_EMBEDDINGS, 500, "internal_error", NULL,
                                             NULL, "The request was aborted by the engine");
        }
        prompt_tokens += o.prompt_tokens;
        if (json_array_append_new(data, entry(q, i, o.embedding, o.n_embedding))) {
            json_decref(data);
            data = NULL;
        }
    }
    destroy_streams(st, q->n);
    char id[64];
    oai_make_id(s, "embd-", id, sizeof id);
    oai_access_note_usage(id, (int)prompt_tokens, 0);
    json_t *body = data ? json_pack("{s:s, s:I, s:s, s:o, s:s, s:{s:I, s:I}}", "id", id,
                                    "created", (json_int_t)time(NULL), "object", "list", "data",
                                    data, "model", s->model_name, "usage", "prompt_tokens",
                                    (json_int_t)prompt_tokens, "total_tokens",
                                    (json_int_t)prompt_tokens)
                        : NULL;
    return oai_respond_json(s, c, R_EMBEDDINGS, 200, body);
}

enum MHD_Result oai_embeddings_run(struct oai_server *s, struct MHD_Connection *c, json_t *body)
{
    if (pgd_engine_task(s->model.engine) != PGD_TASK_EMBED)
        return oai_respond_error(s, c, R_EMBEDDINGS, 400, "invalid_request_error", NULL, NULL,
                                 "The model does not support Embeddings API: this server "
                                 "generates text; start it with --task embed (or --runner "
                                 "pooling) to serve embeddings");
    struct emb_req q;
    struct oai_error e = { 0 };
    enum MHD_Result ret;
    if (!emb_parse(s, body, &q, &e))
        ret = oai_respond_error(s, c, R_EMBEDDINGS, e.status, e.type, e.param[0] ? e.param : NULL,
                                e.code, e.msg);
    else
        ret = emb_run(s, c, &q);
    emb_fini(&q);
    return ret;
}

bool oai_embed_refuses(struct oai_server *s, struct MHD_Connection *c, enum oai_route r,
                       enum MHD_Result *ret)
{
    if (pgd_engine_task(s->model.engine) != PGD_TASK_EMBED)
        return false;
    *ret = oai_respond_error(s, c, r, 400, "invalid_request_error", NULL, NULL,
                             r == R_CHAT ? "The model does not support Chat Completions API: "
                                           "it is served for embeddings (--task embed); use "
                                           "/v1/embeddings"
                                         : "The model does not support Completions API: it is "
                                           "served for embeddings (--task embed); use "
                                           "/v1/embeddings");
    return true;
}

void oai_embed_model_fields(struct oai_server *s, json_t *m)
{
    enum pgd_task t = pgd_engine_task(s->model.engine);
    json_object_set_new(m, "task", json_string(pgd_task_str(t)));
    if (t != PGD_TASK_EMBED)
        return;
    enum pgd_pooling_type pt;
    bool norm;
    pgd_engine_pooler(s->model.engine, &pt, &norm);
    json_object_set_new(m, "pooler_config",
                        json_pack("{s:s, s:b, s:i}", "pooling_type", pgd_pooling_type_str(pt),
                                  "normalize", norm, "hidden_size",
                                  pgd_engine_hidden_size(s->model.engine)));
}
