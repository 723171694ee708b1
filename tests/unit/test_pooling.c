/* Pooling (embeddings, task embed) against transformers: the runner's hidden-state step for
 * a batch of prompts of different lengths in one step, and the engine's LAST, MEAN and CLS
 * vectors (chunked, through the prefix cache), normalized or not, equal to the
 * final-norm hidden states of scripts/make_pooling_reference.py; the refusals; the KV
 * blocks back in the pool once a request is done. */
#include <criterion/criterion.h>
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "runtime/engine/engine_backend.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(pooling);

#define TOL 1e-4                    /* float32 forward against float64-pooled references */

/* pooling_reference.json of a fixture (owned by the caller: json_decref). */
static json_t *pooling_reference(const char *name)
{
    return fixture_json(name, "pooling_reference.json");
}

/* Case i's prompt (malloc'd) and its reference vector `key` (malloc'd, [hidden]). */
static void ref_case(json_t *ref, int i, const char *key, int32_t **prompt, int *np, float **v,
                     int hidden)
{
    json_t *c = json_array_get(json_object_get(ref, "cases"), (size_t)i);
    cr_assert_not_null(c);
    *prompt = json_ints(json_object_get(c, "prompt"), np);
    int nv;
    *v = json_floats(json_object_get(c, key), &nv);
    cr_assert_eq(nv, hidden, "case %d %s: %d floats, hidden %d", i, key, nv, hidden);
}

static void normalize(float *v, int n)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    for (int i = 0; i < n; i++)
        v[i] = (float)(v[i] / sqrt(ss));
}

static struct pgd_engine *embed_engine(const char *name, int num_blocks, int block_size,
                                       int budget, bool prefix_caching)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.task = PGD_TASK_EMBED;
    p.num_blocks = num_blocks;
    p.block_size = block_size;
    p.max_num_batched_tokens = budget;
    p.max_num_seqs = 8;
    p.enable_prefix_caching = prefix_caching;
    return model_engine_params(name, &p);
}

static struct pgd_stream *submit_pool(struct pgd_engine *e, const int32_t *ids, int n,
                                      enum pgd_pooling_type type, bool norm)
{
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = n;
    r.pooling = type;
    r.normalize = norm;
    struct pgd_stream *s;
    char err[256];
    cr_assert_eq(pgd_engine_submit(e, &r, &s, err, sizeof err), PGD_OK, "%s", err);
    return s;
}

/* The stream's one output: its vector (malloc'd copy), usage. */
static float *read_vector(struct pgd_stream *s, int hidden, int *prompt_tokens, int *cached)
{
    struct pgd_output o;
    cr_assert_eq(pgd_stream_next(s, &o, 20000), PGD_OK);
    cr_assert_eq(o.finish_reason, PGD_FINISH_STOP);
    cr_assert_eq(o.n_token_ids, 0);
    cr_assert_not_null(o.embedding);
    cr_assert_eq(o.n_embedding, hidden);
    float *v = malloc((size_t)hidden * sizeof *v);
    memcpy(v, o.embedding, (size_t)hidden * sizeof *v);
    if (prompt_tokens)
        *prompt_tokens = o.prompt_tokens;
    if (cached)
        *cached = o.cached_tokens;
    cr_assert_eq(o.completion_tokens, 0);
    cr_assert_eq(pgd_stream_next(s, &o, 1000), PGD_ERR_CLOSED, "one output only");
    pgd_stream_destroy(s);
    return v;
}

/* Every case of the fixture through the engine (submitted together), pooled as `type`
 * (reference key `key`), compared with transformers'. */
static void engine_matches(struct pgd_engine *e, const char *name, enum pgd_pooling_type type,
                           const char *key, bool norm)
{
    json_t *ref = pooling_reference(name);
    int hidden = pgd_engine_hidden_size(e);
    cr_assert_eq(hidden, json_integer_value(json_object_get(ref, "hidden_size")));
    int nc = (int)json_array_size(json_object_get(ref, "cases"));
    struct pgd_stream *s[8];
    int32_t *prompts[8];
    int np[8];
    float *want[8];
    for (int i = 0; i < nc; i++) {
        ref_case(ref, i, key, &prompts[i], &np[i], &want[i], hidden);
        s[i] = submit_pool(e, prompts[i], np[i], type, norm);
    }
    for (int i = 0; i < nc; i++) {
        int pt;
        float *got = read_vector(s[i], hidden, &pt, NULL);
        cr_assert_eq(pt, np[i]);
        if (norm) {
            double ss = 0;
            for (int k = 0; k < hidden; k++)
                ss += (double)got[k] * got[k];
            cr_assert_float_eq(sqrt(ss), 1.0, 1e-5, "case %d: norm %g", i, sqrt(ss));
            normalize(want[i], hidden);
        }
        double d = rel_max_diff(got, want[i], hidden);
        cr_assert_lt(d, TOL, "%s %s case %d (%d tokens): rel diff %g", name, key, i, np[i], d);
        free(got);
        free(want[i]);
        free(prompts[i]);
    }
    json_decref(ref);
}

/* ---- the runner: one step, several prompts ---------------------------------------------- */

Test(pooling, runner_hidden_step_batches_prompts_of_different_lengths)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *r = fixture_runner(reg, "llama-f32", 64, 16, 8);
    json_t *ref = pooling_reference("llama-f32");
    int hidden = pgd__runner_desc(r)->hidden_size;
    int nc = (int)json_array_size(json_object_get(ref, "cases"));
    struct pgd__step_seq seqs[8];
    int32_t *prompts[8], tables[8][8];
    int np[8], row0[8], n_rows = 0;
    float *last[8], *mean[8];
    /* Even cases: the last row only; odd cases: every row (mean pooling's). */
    for (int s = 0; s < nc; s++) {
        ref_case(ref, s, "last", &prompts[s], &np[s], &last[s], hidden);
        free(prompts[s]);
        ref_case(ref, s, "mean", &prompts[s], &np[s], &mean[s], hidden);
        for (int b = 0; b < 8; b++)
            tables[s][b] = 8 * s + b;
        seqs[s] = (struct pgd__step_seq){ .tokens = prompts[s], .n_new = np[s],
                                          .block_table = tables[s], .n_blocks = 8,
                                          .n_logits = s % 2 ? np[s] : 1 };
        row0[s] = n_rows;
        n_rows += seqs[s].n_logits;
    }
    const float *h = NULL;
    char err[512];
    cr_assert_eq(pgd__runner_step_hidden(r, seqs, nc, &h, err, sizeof err), PGD_OK, "%s", err);
    for (int s = 0; s < nc; s++) {
        const float *rows = h + (size_t)row0[s] * hidden;
        /* Every case's last row is its last-token vector. */
        const float *lr = rows + (size_t)(seqs[s].n_logits - 1) * hidden;
        cr_assert_lt(rel_max_diff(lr, last[s], hidden), TOL, "case %d last row", s);
        if (s % 2) {
            float *m = calloc((size_t)hidden, sizeof *m);
            for (int j = 0; j < np[s]; j++)
                for (int k = 0; k < hidden; k++)
                    m[k] += rows[(size_t)j * hidden + k] / (float)np[s];
            cr_assert_lt(rel_max_diff(m, mean[s], hidden), TOL, "case %d mean", s);
            free(m);
        }
        free(prompts[s]);
        free(last[s]);
        free(mean[s]);
    }
    json_decref(ref);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}

/* ---- the engine ------------------------------------------------------------------------- */

Test(pooling, last_token_matches_transformers)
{
    struct pgd_engine *e = embed_engine("llama-f32", 64, 16, 256, true);
    engine_matches(e, "llama-f32", PGD_POOLING_LAST, "last", false);
    pgd_engine_destroy(e);
}

Test(pooling, last_token_normalized_qwen3)
{
    struct pgd_engine *e = embed_engine("qwen3-f32", 64, 16, 256, true);
    engine_matches(e, "qwen3-f32", PGD_POOLING_LAST, "last", true);
    pgd_engine_destroy(e);
}

/* A 16-token budget: the 70-token prompt is pooled over five chunks, beside the others. */
Test(pooling, mean_over_chunks_matches_transformers)
{
    struct pgd_engine *e = embed_engine("llama-f32", 64, 4, 16, true);
    engine_matches(e, "llama-f32", PGD_POOLING_MEAN, "mean", false);
    engine_matches(e, "llama-f32", PGD_POOLING_MEAN, "mean", true);
    pgd_engine_destroy(e);
}

Test(pooling, cls_matches_transformers)
{
    struct pgd_engine *e = embed_engine("llama-f32", 64, 4, 16, true);
    engine_matches(e, "llama-f32", PGD_POOLING_CLS, "cls", true);
    pgd_engine_destroy(e);
}

/* The same prompt twice: the second LAST request takes prefix-cache hits and gets the same
 * vector; no block is held once both are done (nothing is kept for decoding). */
Test(pooling, last_through_the_prefix_cache_frees_its_blocks)
{
    struct pgd_engine *e = embed_engine("llama-f32", 64, 4, 256, true);
    json_t *ref = pooling_reference("llama-f32");
    int hidden = pgd_engine_hidden_size(e), np, cached;
    int32_t *prompt;
    float *want;
    ref_case(ref, 3, "last", &prompt, &np, &want, hidden);
    float *a = read_vector(submit_pool(e, prompt, np, PGD_POOLING_LAST, false), hidden, NULL,
                           &cached);
    cr_assert_eq(cached, 0);
    float *b = read_vector(submit_pool(e, prompt, np, PGD_POOLING_LAST, false), hidden, NULL,
                           &cached);
    cr_assert_gt(cached, 0, "the second request should hit the prefix cache");
    cr_assert_lt(rel_max_diff(a, want, hidden), TOL);
    cr_assert_lt(rel_max_diff(b, want, hidden), TOL);
    struct pgd_engine_stats st;
    pgd_engine_get_stats(e, &st);
    cr_assert_float_eq(st.kv_cache_usage, 0.0, 1e-12, "blocks still held: %g",
                       st.kv_cache_usage);
    cr_assert_eq(st.generation_tokens, 0);
    free(a);
    free(b);
    free(want);
    free(prompt);
    json_decref(ref);
    pgd_engine_destroy(e);
}

/* ---- refusals --------------------------------------------------------------------------- */

static void refused(struct pgd_engine *e, const struct pgd_request_params *r, const char *what)
{
    struct pgd_stream *s = NULL;
    char err[256] = "";
    cr_assert_neq(pgd_engine_submit(e, r, &s, err, sizeof err), PGD_OK);
    cr_assert_null(s);
    cr_assert(strstr(err, what), "message \"%s\" lacks \"%s\"", err, what);
}

Test(pooling, each_engine_refuses_the_other_task)
{
    int32_t ids[] = { 5, 6, 7 };
    struct pgd_request_params r = pgd_request_default_params();
    r.prompt_ids = ids;
    r.n_prompt_ids = 3;
    struct pgd_engine *e = embed_engine("llama-f32", 16, 16, 64, true);
    r.pooling = PGD_POOLING_MEAN;
    r.sampling.n = 2;
    refused(e, &r, "sampling.n must be 1");
    r.sampling.n = 1;
    r.pooling = (enum pgd_pooling_type)9;
    refused(e, &r, "not one of LAST, MEAN, CLS");
    int32_t bad[] = { 5, 100000 };
    r.pooling = PGD_POOLING_LAST;
    r.prompt_ids = bad;
    r.n_prompt_ids = 2;
    refused(e, &r, "outside the vocabulary");
    pgd_engine_destroy(e);

    e = model_engine("llama-f32", PGD_DEVICE_CPU, 16, 16, 64, 4);
    r.prompt_ids = ids;
    r.n_prompt_ids = 3;
    refused(e, &r, "needs an engine of task embed");
    cr_assert_eq(pgd_engine_task(e), PGD_TASK_GENERATE);
    pgd_engine_destroy(e);
}

/* The engine's pooler_config is what a request that does not choose gets. */
Test(pooling, pooler_config_sets_the_default)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.task = PGD_TASK_EMBED;
    p.pooler_config = "{\"pooling_type\": \"MEAN\", \"normalize\": false}";
    struct pgd_engine *e = model_engine_params("llama-f32", &p);
    enum pgd_pooling_type t;
    bool norm;
    pgd_engine_pooler(e, &t, &norm);
    cr_assert_eq(t, PGD_POOLING_MEAN);
    cr_assert_not(norm);
    engine_matches(e, "llama-f32", PGD_POOLING_NONE, "mean", false);
    pgd_engine_destroy(e);
}

Test(pooling, pooler_config_refusals_name_the_key)
{
    static const struct { const char *json, *what; } bad[] = {
        { "{\"pooling_type\": \"ALL\"}", "pooling_type ALL is not supported" },
        { "{\"pooling_type\": \"STEP\"}", "pooling_type STEP" },
        { "{\"normalize\": 1}", "normalize must be true or false" },
        { "{\"softmax\": true}", "\"softmax\" is not supported" },
        { "[1]", "expected a JSON object" },
        { "{", "pooler_config:" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum pgd_pooling_type t;
        bool n;
        char err[256] = "";
        cr_assert_eq(pgd_pooler_config_parse(bad[i].json, &t, &n, err, sizeof err),
                     PGD_ERR_INVALID_ARG, "%s", bad[i].json);
        cr_assert(strstr(err, bad[i].what), "%s: \"%s\" lacks \"%s\"", bad[i].json, err,
                  bad[i].what);
    }
    enum pgd_pooling_type t;
    bool n;
    char err[256];
    cr_assert_eq(pgd_pooler_config_parse(NULL, &t, &n, err, sizeof err), PGD_OK);
    cr_assert(t == PGD_POOLING_LAST && n);
    cr_assert_eq(pgd_pooler_config_parse("{\"pooling_type\": \"cls\"}", &t, &n, err,
                                         sizeof err), PGD_OK);
    cr_assert(t == PGD_POOLING_CLS && n);
    /* A generating engine takes no pooler_config. */
    struct pgd_engine_params p = pgd_engine_default_params();
    p.model_dir = fixture_dir("llama-f32");
    p.pooler_config = "{\"pooling_type\": \"MEAN\"}";
    struct pgd_engine *e = NULL;
    cr_assert_neq(pgd_engine_create(&p, &e, err, sizeof err), PGD_OK);
    cr_assert(strstr(err, "pooler_config needs task embed"), "%s", err);
}

Test(pooling, embed_does_not_combine_with_speculation)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.task = PGD_TASK_EMBED;
    p.model_dir = fixture_dir("llama-f32");
    p.plugin_path = getenv("PGD_TEST_PLUGIN_DIRS") ? getenv("PGD_TEST_PLUGIN_DIRS")
                                                   : PGD_BUILD_PLUGIN_DIRS;
    p.speculative_config = "{\"method\": \"ngram\", \"num_speculative_tokens\": 2}";
    struct pgd_engine *e = NULL;
    char err[512] = "";
    cr_assert_neq(pgd_engine_create(&p, &e, err, sizeof err), PGD_OK);
    cr_assert_null(e);
    cr_assert(strstr(err, "speculative_config"), "%s", err);
    cr_assert_str_eq(pgd_task_str(PGD_TASK_EMBED), "embed");
    cr_assert_str_eq(pgd_pooling_type_str(PGD_POOLING_MEAN), "MEAN");
}
