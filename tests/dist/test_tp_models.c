/* Tensor parallelism on the CPU against the whole model, under `mpirun -np N` (N = 2 and 4,
 * tests/dist/test_dist.sh), for every Llama-family fixture (Llama f32, Llama bf16 with tied
 * embeddings, Mistral, Qwen2 with q/k/v biases and tied embeddings, Qwen3 with q/k norms,
 * the tiny chat model) and a checkpoint written here with every bias, one KV head and an
 * uneven vocabulary (tp_fixture.h).
 *
 * On every rank: the shard its runner loaded is exactly its slice of the whole model
 * (the same model loaded without a split): the rows of q/k/v and gate/up, the input columns
 * of o_proj and down_proj, the vocabulary rows of the embedding and the head, biases where
 * they belong; the KV cache holds the rank's KV heads. Then rank 0 steps the split runner
 * (the others serve its steps) beside a whole one on the same batches: two sequences, a
 * chunked prefill beside a decode, then decode steps, the same tokens fed to both.
 *
 * Tolerance: the split model adds each row-parallel layer's partial sums (and the
 * embedding's) in another order than the whole model's single dot products. In float32 (unit
 * roundoff 6e-8) a reordered sum of K = 128 terms differs by at most ~K * 6e-8 of the sum of
 * magnitudes, and two layers carry that through a few norms; we measure ~1e-6 of the largest
 * logit. 1e-4 (relative to the row's largest |logit|) is far above that and far below
 * anything a wrong slice gives (a wrong head, column or vocabulary row moves logits by 1e-1
 * and more). The greedy token must be the whole model's unless the two are a near-tie: the
 * whole model's best logit beats the split model's pick by less than that tolerance.
 *
 * The quantized fixtures (GPTQ, AWQ, FP8) run the same way; their shards are compared as
 * the float32 weights the CPU dequantizes them to, which must be exactly the whole
 * model's slices (the same fields, zeros and scales reach the same products), act-order's
 * channels and groups split in the checkpoint's input order included. GPTQ and AWQ then
 * meet the 1e-4 tolerance like dense models. FP8 is W8A8: each token's activations are
 * rounded to e4m3 with a scale from their largest magnitude, and a row-parallel layer's
 * rank sees only its slice of the row, so its scale (and so its rounding: 3 mantissa bits)
 * differs from the whole model's, as in vLLM, which also scales each rank's slice. That
 * moves these tiny models' logits by up to ~0.2 (2 ranks) and ~0.26 (4 ranks) of the largest
 * measured; FP8_TOL (0.35) bounds it, and greedy tokens may differ only within it (14 and
 * 19 of 114 do: the line printed at the end counts them). */
#include "config.h"
#include "runtime/dist/comm.h"
#include "runtime/runner/runner_internal.h"
#include "runtime/model/qweight.h"
#include "models/common/decoder.h"
#include "tests/dist/dist_check.h"
#include "tests/dist/tp_fixture.h"
#include <pagoda/registry.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double TOL = 1e-4;
/* FP8 (W8A8): see the file's comment. */
static const double FP8_TOL = 0.35;
static double largest_rel_diff[2];  /* over every row compared, printed at the end: [fp8] */
static int greedy_rows[2], greedy_differ[2];   /* rows compared, rows whose greedy differs */
enum { BLOCK = 4, NUM_BLOCKS = 64, STEPS = 10 };

static const char *env_or(const char *var, const char *dflt)
{
    const char *v = getenv(var);
    return v && *v ? v : dflt;
}

static struct pgd__runner *make_runner(const char *dir, const char *quantization,
                                       struct pgd_registry *reg, struct pgd__comm *comm)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = dir;
    p.quantization = quantization;
    p.registry = reg;
    p.num_blocks = NUM_BLOCKS;
    p.block_size = BLOCK;
    p.max_num_seqs = 8;
    p.max_num_batched_tokens = 64;
    p.comm = comm;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    CHECK(pgd__runner_create(&p, &r, err, sizeof err) == PGD_OK, "%s: %s", dir, err);
    return r;
}

/* A linear layer's weights as float32 [out, in]: a dense layer's tensor, or the weights a
 * quantized layer dequantized to (the CPU keeps them so: runtime/model/qweight.c). */
static struct pgd_tensor weights_of(const struct pgd_linear *l)
{
    if (!l->quant)
        return l->weight;
    const struct pgd_qweight *w = l->quant_state;
    return (struct pgd_tensor){ .data = w->dense, .dtype = PGD_DTYPE_F32, .ndim = 2,
                                .ne = { w->out, w->in } };
}

/* rows [r0, r0 + n) x cols [c0, c0 + nc) of the whole [*, ld] matrix w equal the shard s
 * [n, nc]. Returns the count of elements that differ. */
static int slice_diff(const struct pgd_tensor *whole, int64_t r0, int64_t c0,
                      const struct pgd_tensor *shard)
{
    const float *w = whole->data, *s = shard->data;
    int64_t ld = pgd_tensor_cols(whole), n = pgd_tensor_rows(shard);
    int64_t nc = shard->ndim == 1 ? 1 : pgd_tensor_cols(shard);
    if (whole->ndim == 1)
        ld = 1;
    int bad = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < nc; c++)
            bad += s[r * nc + c] != w[(r0 + r) * ld + c0 + c];
    return bad;
}

/* This rank's shard against the whole model (struct decoder of models/common). */
static void check_shard(const char *name, const struct pgd__model *whole_m,
                        const struct pgd__model *tp_m)
{
    const struct decoder *W = whole_m->impl, *T = tp_m->impl;
    const struct decoder_config *c = &W->cfg;
    const struct decoder_shard *s = &T->shard;
    int n = dist_size, r = dist_rank;
    int heads = c->n_heads / n, kv = c->n_kv_heads >= n ? c->n_kv_heads / n : 1;
    int kv0 = c->n_kv_heads >= n ? r * kv : r / (n / c->n_kv_heads);
    int64_t D = c->head_dim, I = c->inter / n, chunk = (c->vocab + n - 1) / n;
    CHECK(s->heads == heads && s->kv_heads == kv && s->kv_head0 == kv0 && s->inter == I,
          "%s: shard heads %d kv %d from %d inter %d", name, s->heads, s->kv_heads, s->kv_head0,
          s->inter);
    CHECK(tp_m->desc.n_kv_heads == kv && tp_m->desc.vocab_size == c->vocab,
          "%s: desc n_kv_heads %d vocab %d", name, tp_m->desc.n_kv_heads, tp_m->desc.vocab_size);
    int64_t v0 = chunk * r, vrows = c->vocab - v0 < chunk ? c->vocab - v0 : chunk;
    CHECK(pgd_tensor_rows(&T->embed) == vrows && slice_diff(&W->embed, v0, 0, &T->embed) == 0,
          "%s: embedding rows [%lld, +%lld)", name, (long long)v0, (long long)vrows);
    if (c->tied)
        CHECK(T->lm_head.weight.data == T->embed.data, "%s: tied head is the embedding", name);
    else
        CHECK(slice_diff(&W->lm_head.weight, v0, 0, &T->lm_head.weight) == 0 &&
                  T->lm_head.out_features == vrows, "%s: head rows", name);
    for (int l = 0; l < c->n_layers; l++) {
        const struct decoder_layer *w = &W->layers[l], *t = &T->layers[l];
        struct pgd_tensor wq = weights_of(&w->q), wk = weights_of(&w->k),
                          wv = weights_of(&w->v), wo = weights_of(&w->o),
                          wgu = weights_of(&w->gate_up), wd = weights_of(&w->down);
        struct pgd_tensor tq = weights_of(&t->q), tk = weights_of(&t->k),
                          tv = weights_of(&t->v), to = weights_of(&t->o),
                          tgu = weights_of(&t->gate_up), td = weights_of(&t->down);
        CHECK(!w->q.quant == !t->q.quant && !w->o.quant == !t->o.quant &&
                  !w->down.quant == !t->down.quant, "%s layer %d: quantized in one model and "
              "not in the other", name, l);
        int bad = slice_diff(&wq, r * heads * D, 0, &tq) + slice_diff(&wk, kv0 * D, 0, &tk) +
                  slice_diff(&wv, kv0 * D, 0, &tv) + slice_diff(&wo, 0, r * heads * D, &to);
        CHECK(bad == 0 && t->q.out_features == heads * D && t->k.out_features == kv * D &&
                  t->o.in_features == heads * D, "%s layer %d: attention slices (%d differ)",
              name, l, bad);
        /* gate rows of this rank, then its up rows, from the whole fused [2I_all, hidden]. */
        struct pgd_tensor gate = tgu, up = tgu;
        gate.ne[0] = up.ne[0] = I;
        up.data = (float *)up.data + I * c->hidden;
        bad = slice_diff(&wgu, r * I, 0, &gate) + slice_diff(&wgu, c->inter + r * I, 0, &up) +
              slice_diff(&wd, 0, r * I, &td);
        CHECK(bad == 0, "%s layer %d: MLP slices (%d differ)", name, l, bad);
        if (c->qkv_bias)
            CHECK(slice_diff(&w->q.bias, r * heads * D, 0, &t->q.bias) == 0 &&
                      slice_diff(&w->k.bias, kv0 * D, 0, &t->k.bias) == 0,
                  "%s layer %d: q/k bias slices", name, l);
        /* Row-parallel biases enter the all-reduce once: rank 0 holds them, no one else. */
        if (c->o_bias)
            CHECK(r == 0 ? slice_diff(&w->o.bias, 0, 0, &t->o.bias) == 0 : !t->o.bias.data,
                  "%s layer %d: o_proj bias on rank 0 only", name, l);
        if (c->mlp_bias)
            CHECK(r == 0 ? slice_diff(&w->down.bias, 0, 0, &t->down.bias) == 0
                         : !t->down.bias.data, "%s layer %d: down bias on rank 0 only", name, l);
    }
    CHECK(n == 1 || tp_m->weight_bytes < whole_m->weight_bytes, "%s: the shard (%zu bytes) is "
          "smaller than the model (%zu)", name, tp_m->weight_bytes, whole_m->weight_bytes);
}

static int argmax_row(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

/* Compares rows logits rows of the split runner (tp) with the whole one (ref); writes the
 * whole model's greedy tokens into next. */
static void compare_rows(const char *name, int step, const float *ref, const float *tp, int rows,
                         int vocab, double tol, int32_t *next)
{
    double *largest = &largest_rel_diff[tol > TOL];
    for (int i = 0; i < rows; i++) {
        const float *a = ref + (size_t)i * vocab, *b = tp + (size_t)i * vocab;
        double maxabs = 0, maxdiff = 0;
        for (int v = 0; v < vocab; v++) {
            maxabs = fmax(maxabs, fabs(a[v]));
            maxdiff = fmax(maxdiff, fabs(a[v] - b[v]));
        }
        if (maxabs > 0 && maxdiff / maxabs > *largest)
            *largest = maxdiff / maxabs;
        CHECK(maxdiff <= tol * maxabs, "%s step %d row %d: logits differ by %.3g of %.3g", name,
              step, i, maxdiff, maxabs);
        int ta = argmax_row(a, vocab), tb = argmax_row(b, vocab);
        greedy_rows[tol > TOL]++;
        greedy_differ[tol > TOL] += ta != tb;
        CHECK(ta == tb || a[ta] - a[tb] <= tol * maxabs, "%s step %d row %d: greedy %d vs %d "
              "(not a near-tie: %.3g apart)", name, step, i, ta, tb, (double)(a[ta] - a[tb]));
        next[i] = ta;
    }
}

/* Rank 0: two sequences (A a 7-token prompt, B a 20-token prompt prefilled in two chunks
 * beside A's first decode), then decode steps, on both runners. */
static void run_scenario(const char *name, struct pgd__runner *ref, struct pgd__runner *tp,
                         double tol)
{
    int vocab = pgd__runner_desc(ref)->vocab_size;
    int32_t a[32], b[40];
    for (int i = 0; i < 40; i++) {
        if (i < 32)
            a[i] = (int32_t)((i * 37 + 11) % vocab);
        b[i] = (int32_t)((i * 53 + 5) % vocab);
    }
    const int32_t ta[] = { 10, 3, 7, 1, 12, 13, 14, 15, 16 };
    const int32_t tb[] = { 2, 4, 5, 6, 8, 9, 11, 17, 18, 19, 20, 21 };
    int a_len = 7, b_len = 20;                 /* tokens of A and B known so far */
    char err[1024];
    for (int step = 0; step < STEPS; step++) {
        /* A: its prompt, then one token a step. B: 12 prompt tokens (no logits), the other
         * 8 beside A's first decode, then one token a step. */
        int a_comp = step == 0 ? 0 : a_len - 1;
        int b_comp = step == 0 ? 0 : step == 1 ? 12 : b_len - 1;
        int b_end = step == 0 ? 12 : b_len;
        struct pgd__step_seq seqs[2] = {
            { .tokens = a + a_comp, .n_new = a_len - a_comp, .n_computed = a_comp,
              .block_table = ta, .n_blocks = (a_len + BLOCK - 1) / BLOCK, .n_logits = 1 },
            { .tokens = b + b_comp, .n_new = b_end - b_comp, .n_computed = b_comp,
              .block_table = tb, .n_blocks = (b_end + BLOCK - 1) / BLOCK,
              .n_logits = step == 0 ? 0 : 1 },
        };
        const float *lr, *lt;
        int rows = step == 0 ? 1 : 2;
        CHECK(pgd__runner_step(ref, seqs, 2, &lr, err, sizeof err) == PGD_OK, "%s: %s", name, err);
        float *copy = malloc((size_t)rows * vocab * sizeof *copy);
        memcpy(copy, lr, (size_t)rows * vocab * sizeof *copy);
        CHECK(pgd__runner_step(tp, seqs, 2, &lt, err, sizeof err) == PGD_OK, "%s: %s", name, err);
        int32_t next[2];
        compare_rows(name, step, copy, lt, rows, vocab, tol, next);
        free(copy);
        a[a_len++] = next[0];
        if (step > 0)
            b[b_len++] = next[1];
    }
}

/* The fixture at dir (loaded with --quantization `quantization`, NULL: the checkpoint's)
 * split over the ranks against the whole model, logits within tol. */
static void run_fixture(const char *name, const char *dir, const char *quantization,
                        double tol, struct pgd_registry *reg, struct pgd__comm *comm)
{
    char err[1024] = "";
    struct pgd__model *whole = NULL;
    struct pgd__model_opts o = { .dtype = PGD_DTYPE_COUNT, .quantization = quantization };
    /* The shards are slices of the checkpoint's layers as stored: the whole model to slice is
     * loaded without act-order's fold (which one process does, pgd_model_load_mlp, and a
     * split model does not). The reference runner below does fold: its logits show the two
     * compute the same function. */
    setenv("PGD_FOLD_ACT_ORDER", "0", 1);
    CHECK(pgd__model_load_opts(dir, reg, PGD_DEVICE_CPU, &o, &whole, err, sizeof err) == PGD_OK,
          "%s: %s", name, err);
    unsetenv("PGD_FOLD_ACT_ORDER");
    struct pgd__runner *tp = make_runner(dir, quantization, reg, comm);
    if (whole && tp)
        check_shard(name, whole, pgd__runner_model(tp));
    pgd__model_destroy(whole);
    if (!tp)
        return;   /* every rank failed the same way (the loads are symmetric) */
    if (dist_rank == 0) {
        struct pgd__runner *ref = make_runner(dir, quantization, reg, NULL);
        if (ref)
            run_scenario(name, ref, tp, tol);
        pgd__runner_destroy(ref);
    } else {
        CHECK(pgd__runner_serve_worker(tp, err, sizeof err) == PGD_OK, "%s: worker: %s", name, err);
    }
    pgd__runner_destroy(tp);      /* rank 0's ends the workers' loop */
}

int main(int argc, char **argv)
{
    dist_start(&argc, &argv);
    char err[1024] = "";
    struct pgd__comm *comm = NULL;
    struct pgd_registry *reg = NULL;
    CHECK(pgd__comm_create(dist_size, PGD_DEVICE_CPU, &comm, err, sizeof err) == PGD_OK, "%s",
          err);
    CHECK(pgd_registry_create(&reg, err, sizeof err) == PGD_OK, "%s", err);
    if (!comm || !reg)
        return dist_finish("tp_models");
    pgd_registry_load_search_path(reg, env_or("PGD_TEST_PLUGIN_DIRS", PGD_BUILD_PLUGIN_DIRS));

    /* Rank 0 writes the bias fixture; the ranks share the host's file system. */
    char tmp[256] = "";
    if (dist_rank == 0) {
        snprintf(tmp, sizeof tmp, "%s/pgd_tp_XXXXXX", env_or("TMPDIR", "/tmp"));
        if (!mkdtemp(tmp) || tp_fixture_write(tmp))
            tmp[0] = 0;
    }
    MPI_Bcast(tmp, sizeof tmp, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(tmp[0], "could not write the bias fixture");
    if (tmp[0])
        run_fixture("llama-bias-kv1", tmp, NULL, TOL, reg, comm);

    const char *src = env_or("PGD_TEST_SRCDIR", PGD_TEST_SRCDIR);
    static const char *const fixtures[] = { "llama-f32", "llama-bf16", "mistral-f32",
                                            "qwen2-f32", "qwen3-f32", "tiny-chat" };
    for (size_t i = 0; i < sizeof fixtures / sizeof *fixtures; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/fixtures/models/%s", src, fixtures[i]);
        run_fixture(fixtures[i], dir, NULL, TOL, reg, comm);
    }
    /* The quantized fixtures (scripts/make_quant_fixtures.py): GPTQ 4 and 8 bits, symmetric,
     * asymmetric, act-order, v1 and v2, per-channel; AWQ; FP8 per tensor, per channel,
     * with ignored layers, and quantized at load; compressed-tensors FP8; over Llama,
     * Mistral, Qwen2, Qwen3. */
    static const char *const quant[] = {
        "llama-gptq-4b-g32-sym", "llama-gptq-4b-g64-asym-act", "llama-gptq-8b-g128-sym-act-v2",
        "mistral-gptq-4b-g64-sym-act-v2-file", "qwen2-gptq-4b-g32-asym-v2",
        "qwen3-gptq-8b-gm1-asym", "llama-awq-g32-skip", "qwen2-awq-g64-file", "qwen3-awq-g128",
        "llama-fp8-tensor", "mistral-fp8-tensor-ignored", "qwen3-fp8-channel",
        "llama-ct-fp8-dynamic", "qwen3-ct-fp8-static",
    };
    for (size_t i = 0; i < sizeof quant / sizeof *quant; i++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/fixtures/quant/%s", src, quant[i]);
        run_fixture(quant[i], dir, NULL, strstr(quant[i], "fp8") ? FP8_TOL : TOL, reg, comm);
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/models/llama-bf16", src);
    run_fixture("llama-bf16 --quantization fp8", dir, "fp8", FP8_TOL, reg, comm);
    MPI_Barrier(MPI_COMM_WORLD);
    if (dist_rank == 0)
        printf("largest logits difference, split vs whole: %.3g of the row's largest |logit| "
               "(tolerance %.0e); FP8: %.3g (tolerance %.2g)\n", largest_rel_diff[0], TOL,
               largest_rel_diff[1], FP8_TOL);
    if (dist_rank == 0)
        printf("greedy tokens that differ (near-ties): %d of %d rows; FP8: %d of %d\n",
               greedy_differ[0], greedy_rows[0], greedy_differ[1], greedy_rows[1]);
    if (dist_rank == 0 && tmp[0]) {
        char path[512];
        snprintf(path, sizeof path, "%s/model.safetensors", tmp);
        unlink(path);
        snprintf(path, sizeof path, "%s/config.json", tmp);
        unlink(path);
        rmdir(tmp);
    }
    pgd_registry_destroy(reg);
    pgd__comm_destroy(comm);
    return dist_finish("tp_models");
}
