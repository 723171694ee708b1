/* The REPL's in-process backend: renders the conversation with the model's chat template
 * and runs it on the engine the host attached (the same engine `pagoda serve` uses).
 * Ctrl-C aborts the request in the engine, which frees its KV blocks. */
#include "plugins/frontend/repl/repl.h"
#include "runtime/base/clock.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct engine_backend {
    struct repl_backend base;
    struct pgd_frontend_model m;      /* borrowed from the host until destroy */
};

static double now_s(void)
{
    return (double)pgd__now_ms() * 1e-3;
}

static struct pgd_request_params request_params(const struct repl_sampling *sp)
{
    struct pgd_request_params rp = pgd_request_default_params();
    rp.add_special_tokens = false;    /* the template wrote BOS etc. (as the server does) */
    rp.sampling.max_tokens = -1;      /* a chat answers until EOS or max_model_len */
    if (sp->has & REPL_HAS_TEMPERATURE)
        rp.sampling.temperature = (float)sp->temperature;
    if (sp->has & REPL_HAS_TOP_P)
        rp.sampling.top_p = (float)sp->top_p;
    if (sp->has & REPL_HAS_TOP_K)
        rp.sampling.top_k = sp->top_k;
    if (sp->has & REPL_HAS_MAX_TOKENS)
        rp.sampling.max_tokens = sp->max_tokens;
    if (sp->has & REPL_HAS_SEED) {
        rp.sampling.has_seed = true;
        rp.sampling.seed = sp->seed;
    }
    rp.sampling.ignore_eos = sp->ignore_eos;
    return rp;
}

/* Reads the stream to its end, or aborts the request once *cancel is set. */
static enum pgd_status drain(struct engine_backend *b, struct pgd_stream *stream, double t0,
                             repl_text_fn on_text, void *ctx, volatile sig_atomic_t *cancel,
                             struct repl_result *res)
{
    struct pgd_output o;
    bool abort_sent = false;
    for (;;) {
        if (*cancel && !abort_sent) {
            pgd_engine_abort(b->m.engine, pgd_stream_request_id(stream));
            abort_sent = true;
            res->aborted = true;
        }
        enum pgd_status st = pgd_stream_next(stream, &o, 50);
        if (st == PGD_ERR_TIMEOUT)
            continue;
        if (st == PGD_ERR_CLOSED)
            return PGD_OK;
        if (st != PGD_OK)
            return st;
        if (o.n_token_ids > 0 && res->ttft_s < 0)
            res->ttft_s = now_s() - t0;
        res->prompt_tokens = o.prompt_tokens;
        res->completion_tokens = o.completion_tokens;
        if (o.text_len && !abort_sent)
            on_text(ctx, o.text, o.text_len);
        if (o.finish_reason == PGD_FINISH_ABORT)
            res->aborted = true;
    }
}

static enum pgd_status eb_chat(struct repl_backend *base, json_t *messages,
                               const struct repl_sampling *sp, repl_text_fn on_text, void *ctx,
                               volatile sig_atomic_t *cancel, struct repl_result *res,
                               char *err, size_t errlen)
{
    struct engine_backend *b = (struct engine_backend *)base;
    double t0 = now_s();
    *res = (struct repl_result){ .prompt_tokens = -1, .completion_tokens = -1, .ttft_s = -1 };
    char *mj = json_dumps(messages, JSON_COMPACT);
    if (!mj)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    char *prompt = NULL;
    enum pgd_status st = b->m.render_chat(b->m.render_ctx, mj, NULL, true, NULL, &prompt, err,
                                          errlen);
    free(mj);
    if (st != PGD_OK) {
        free(prompt);
        return st;
    }
    struct pgd_request_params rp = request_params(sp);
    rp.prompt = prompt;
    struct pgd_stream *stream = NULL;
    st = pgd_engine_submit(b->m.engine, &rp, &stream, err, errlen);
    free(prompt);
    if (st != PGD_OK)
        return st;
    st = drain(b, stream, t0, on_text, ctx, cancel, res);
    pgd_stream_destroy(stream);
    res->total_s = now_s() - t0;
    if (st != PGD_OK)
        return pgd_errf(err, errlen, st, "reading the answer failed (%s)", pgd_status_str(st));
    return PGD_OK;
}

static enum pgd_status eb_stats(struct repl_backend *base, char *out, size_t outlen)
{
    struct engine_backend *b = (struct engine_backend *)base;
    struct pgd_engine_stats s;
    pgd_engine_get_stats(b->m.engine, &s);
    int used = (int)(s.kv_cache_usage * s.num_blocks + 0.5);
    snprintf(out, outlen, "engine: %d running, %d waiting, KV blocks in use %d/%d (%.1f%%)",
             s.num_requests_running, s.num_requests_waiting, used, s.num_blocks,
             100.0 * s.kv_cache_usage);
    return PGD_OK;
}

static const char *eb_name(struct repl_backend *base)
{
    return ((struct engine_backend *)base)->m.name;
}

static void eb_destroy(struct repl_backend *base)
{
    free(base);
}

enum pgd_status repl_engine_backend(const struct pgd_frontend_model *m,
                                    struct repl_backend **out, char *err, size_t errlen)
{
    if (m->struct_size < offsetof(struct pgd_frontend_model, render_ctx) + sizeof m->render_ctx)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "frontend.repl: the host's model description is too old");
    if (!m->render_chat || !m->tokenizer)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "%s: the model has no chat template (tokenizer_config.json "
                        "chat_template): `pagoda generate` runs plain prompts", m->root);
    struct engine_backend *b = calloc(1, sizeof *b);
    if (!b)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "frontend.repl: no memory");
    b->m = *m;
    b->base = (struct repl_backend){ .chat = eb_chat, .engine_stats = eb_stats,
                                     .name = eb_name, .destroy = eb_destroy };
    *out = &b->base;
    return PGD_OK;
}
