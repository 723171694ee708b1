/* The FP8 KV cache (kv_cache_dtype fp8 = e4m3 with per-layer scales) on the CPU: the cache
 * write and read of pgd_cpu_kv_write / pgd_cpu_attention (round trip, saturation, the
 * scales), the setting's parsing, the pool sizing with 1-byte elements, the checkpoint's
 * k_scale / v_scale, and whole models with an FP8 cache against the same models with a
 * float32 cache.
 *
 * Tolerances. e4m3 keeps 3 mantissa bits: a value in the normal range (|x| / scale >= 2^-6)
 * is stored with a relative error of at most 2^-4 (round to nearest), a subnormal one with
 * an absolute error of at most 2^-10 * scale; the unit tests below check exactly that, and
 * that attention reads nothing but the dequantized values. What the logits then do is the
 * model's sensitivity to its K/V being rounded, which is linear in the per-element error:
 * rounding the float32 cache of these fixtures to 7 mantissa bits (bf16's precision,
 * relative 2^-8; a temporary hook, not kept) moved their logits by at most 0.012 of the
 * largest, and to 3 bits by 0.244 (llama), 0.161 (qwen2), 0.121 (mistral), 0.055 (qwen3):
 * the same figures as this FP8 cache gives, 16 times the 2^-8 figure as the 16 times
 * larger element error predicts. The fixtures are random 2-layer models with large
 * activations (|K|, |V| up to 8, attention scores of several units, where a 2^-4 error of
 * a score moves its softmax weight by several percent), hence the size. MODEL_TOL = 2^-2
 * of the largest logit bounds that with a margin; a wrong scale or a misread cache moves
 * the logits by their whole range.
 * Greedy tokens are compared up to the first step where the float32-cache run had its top
 * two logits within 2 * MODEL_TOL of the largest logit (the most two logits can move apart
 * by): the fixtures' top-2 gaps are 0.0002 to 0.012 of the largest logit (reference.json's
 * min_top2_gap), so many prompts meet such a near-tie within 8 tokens (5 of the 16 keep all
 * 8 tokens); how many do is printed. */
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/model.h"
#include "runtime/model/safetensors.h"
#include "runtime/runner/runner_internal.h"
#include <jansson.h>
#include <pagoda/engine.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGD_TEST_SUITE(kv_fp8);

#define MODEL_TOL 0.25     /* of the largest logit; see the top */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)                 /* uniform in [-1, 1) */
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* ---- write and read ----------------------------------------------------------------------- */
Test(kv_fp8, write_read_round_trip_within_the_e4m3_bound)
{
    enum { KV = 2, D = 16, SLOTS = 32 };
    const float ks = 0.01f, vs = 0.25f;
    uint8_t k8[SLOTS * KV * D], v8[SLOTS * KV * D];
    struct pgd_cpu_kv_layer kv = { NULL, NULL, 4, KV, D, k8, v8, ks, vs };
    float k[SLOTS * KV * D], v[SLOTS * KV * D];
    int64_t slots[SLOTS];
    for (int i = 0; i < SLOTS * KV * D; i++) {
        k[i] = 4.0f * frand() * ks * 100;          /* |k| / ks up to 400: no saturation */
        v[i] = 4.0f * frand() * vs * 100;
    }
    for (int t = 0; t < SLOTS; t++)
        slots[t] = (t * 7 + 3) % SLOTS;            /* scattered rows */
    pgd_cpu_kv_write(&kv, k, v, slots, SLOTS);
    for (int t = 0; t < SLOTS; t++)
        for (int e = 0; e < KV * D; e++) {
            size_t at = (size_t)slots[t] * KV * D + e, i = (size_t)t * KV * D + e;
            float kr = pgd_fp8_e4m3_to_float(k8[at]) * ks, vr = pgd_fp8_e4m3_to_float(v8[at]) * vs;
            /* normal range: relative 2^-4; below it: absolute 2^-10 of the scale */
            cr_assert_leq(fabsf(kr - k[i]), fmaxf(fabsf(k[i]) / 16, ks / 1024) * 1.0001f,
                          "K slot %lld elem %d: %g read back as %g", (long long)slots[t], e,
                          k[i], kr);
            cr_assert_leq(fabsf(vr - v[i]), fmaxf(fabsf(v[i]) / 16, vs / 1024) * 1.0001f,
                          "V slot %lld elem %d: %g read back as %g", (long long)slots[t], e,
                          v[i], vr);
            /* and it is the nearest code: re-encoding the read value gives the same byte */
            cr_assert_eq(pgd_fp8_e4m3_from_float(kr / ks), k8[at]);
        }
}

Test(kv_fp8, write_saturates_at_448_times_the_scale)
{
    enum { KV = 1, D = 8 };
    uint8_t k8[4 * D], v8[4 * D];
    memset(k8, 0, sizeof k8);
    memset(v8, 0, sizeof v8);
    struct pgd_cpu_kv_layer kv = { NULL, NULL, 4, KV, D, k8, v8, 0.5f, 2.0f };
    float k[D] = { 1000, -1000, 224, -224, 225, 1e30f, -1e30f, 0 };
    float v[D] = { 1000, -1000, 896, -896, 897, 1e30f, -1e30f, -0.0f };
    int64_t slot[1] = { 2 };
    pgd_cpu_kv_write(&kv, k, v, slot, 1);
    const float kwant[D] = { 224, -224, 224, -224, 224, 224, -224, 0 };
    const float vwant[D] = { 896, -896, 896, -896, 896, 896, -896, 0 };
    for (int e = 0; e < D; e++) {
        cr_assert_float_eq(pgd_fp8_e4m3_to_float(k8[2 * D + e]) * 0.5f, kwant[e], 0,
                           "K %g -> %g", k[e], pgd_fp8_e4m3_to_float(k8[2 * D + e]) * 0.5f);
        cr_assert_float_eq(pgd_fp8_e4m3_to_float(v8[2 * D + e]) * 2.0f, vwant[e], 0,
                           "V %g -> %g", v[e], pgd_fp8_e4m3_to_float(v8[2 * D + e]) * 2.0f);
    }
    /* the other slots are untouched */
    for (int e = 0; e < 2 * D; e++)
        cr_assert_eq(k8[e], 0);
}

/* Attention over an FP8 cache equals attention over a float32 cache holding the dequantized
 * values (the read multiplies by the scale, nothing else), prefix and new tokens, with and
 * without a sliding window. */
static void check_attention_reads_dequantized(int window)
{
    enum { H = 4, KV = 2, D = 8, BS = 4, NB = 8, N = 13 };
    const float ks = 0.02f, vs = 0.05f;
    size_t width = KV * D, cells = (size_t)NB * BS * width;
    uint8_t *k8 = calloc(cells, 1), *v8 = calloc(cells, 1);
    float *kf = calloc(cells, sizeof *kf), *vf = calloc(cells, sizeof *vf);
    float k[N * KV * D], v[N * KV * D], q[N * H * D], got[N * H * D], want[N * H * D];
    for (int i = 0; i < N * KV * D; i++) {
        k[i] = frand() * 3;
        v[i] = frand() * 5;
    }
    for (int i = 0; i < N * H * D; i++)
        q[i] = frand();
    int32_t table[4] = { 5, 1, 7, 2 }, qs[2] = { 0, N }, lens[1] = { N }, pos[N];
    int64_t slots[N];
    for (int t = 0; t < N; t++) {
        pos[t] = t;
        slots[t] = (int64_t)table[t / BS] * BS + t % BS;
    }
    struct pgd_cpu_kv_layer c8 = { NULL, NULL, BS, KV, D, k8, v8, ks, vs };
    pgd_cpu_kv_write(&c8, k, v, slots, N);
    for (size_t i = 0; i < cells; i++) {
        kf[i] = pgd_fp8_e4m3_to_float(k8[i]) * ks;
        vf[i] = pgd_fp8_e4m3_to_float(v8[i]) * vs;
    }
    struct pgd_cpu_kv_layer cf = { kf, vf, BS, KV, D, NULL, NULL, 0, 0 };
    struct pgd_cpu_seq_layout L = { 1, qs, lens, table, 4, pos };
    struct pgd_attn_params p = { H, KV, D, (float)(1 / sqrt(D)), window };
    float scores[N + 1];
    pgd_cpu_attention(&c8, &L, &p, q, scores, got);
    pgd_cpu_attention(&cf, &L, &p, q, scores, want);
    for (int i = 0; i < N * H * D; i++)
        cr_assert_float_eq(got[i], want[i], 1e-6f * (1 + fabsf(want[i])), "element %d", i);
    free(k8); free(v8); free(kf); free(vf);
}

Test(kv_fp8, attention_reads_the_dequantized_cache) { check_attention_reads_dequantized(0); }
Test(kv_fp8, attention_reads_the_dequantized_cache_in_a_window)
{
    check_attention_reads_dequantized(5);
}

/* ---- the setting and the pool --------------------------------------------------------------- */
Test(kv_fp8, kv_cache_dtype_spellings)
{
    char err[256];
    enum pgd_dtype dt;
    cr_assert_eq(pgd__kv_cache_dtype_parse(NULL, &dt, err, sizeof err), PGD_OK);
    cr_assert_eq(dt, PGD_DTYPE_COUNT);
    cr_assert_eq(pgd__kv_cache_dtype_parse("auto", &dt, err, sizeof err), PGD_OK);
    cr_assert_eq(dt, PGD_DTYPE_COUNT);
    cr_assert_eq(pgd__kv_cache_dtype_parse("fp8", &dt, err, sizeof err), PGD_OK);
    cr_assert_eq(dt, PGD_DTYPE_F8_E4M3);
    cr_assert_eq(pgd__kv_cache_dtype_parse("fp8_e4m3", &dt, err, sizeof err), PGD_OK);
    cr_assert_eq(dt, PGD_DTYPE_F8_E4M3);
    cr_assert_eq(pgd__kv_cache_dtype_parse("fp8_e5m2", &dt, err, sizeof err),
                 PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "kv_cache_dtype") && strstr(err, "fp8_e5m2"), "%s", err);
    cr_assert_eq(pgd__kv_cache_dtype_parse("int8", &dt, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "'int8'"), "%s", err);
}

Test(kv_fp8, block_bytes_use_one_byte_elements)
{
    size_t f8 = pgd__kv_cache_block_bytes(2, 16, 2, 16, PGD_DTYPE_F8_E4M3);
    cr_assert_eq(f8, 2u * 2 * 16 * 2 * 16);
    cr_assert_eq(pgd__kv_cache_block_bytes(2, 16, 2, 16, PGD_DTYPE_BF16), 2 * f8);
    cr_assert_eq(pgd__kv_cache_block_bytes(2, 16, 2, 16, PGD_DTYPE_F32), 4 * f8);
}

/* The same kv_cache_memory_bytes hold four times the blocks of the CPU's float32 cache, and
 * the metrics' cache_config_info says which cache it is (vLLM's cache_dtype label). */
Test(kv_fp8, engine_pool_holds_more_tokens_in_the_same_memory)
{
    int blocks[2];
    for (int i = 0; i < 2; i++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.kv_cache_memory_bytes = (size_t)1 << 20;
        p.kv_cache_dtype = i ? "fp8" : NULL;
        struct pgd_engine *e = model_engine_params("llama-f32", &p);
        struct pgd_engine_stats st;
        pgd_engine_get_stats(e, &st);
        blocks[i] = st.num_blocks;
        char *text = NULL;
        size_t len = 0;
        cr_assert_eq(pgd_engine_metrics_text(e, &text, &len), PGD_OK);
        cr_assert(strstr(text, i ? "cache_dtype=\"fp8\"" : "cache_dtype=\"auto\""), "%s", text);
        free(text);
        pgd_engine_destroy(e);
    }
    /* llama-f32: 2 layers x 2 kv heads x 16 dims x 16 tokens x K,V */
    cr_assert_eq(blocks[0], (1 << 20) / (2 * 2 * 2 * 16 * 16 * 4));
    cr_assert_eq(blocks[1], 4 * blocks[0], "fp8: %d blocks, float32: %d", blocks[1], blocks[0]);
}

Test(kv_fp8, engine_refuses_e5m2_and_unknown_dtypes)
{
    const char *bad[2] = { "fp8_e5m2", "float8" };
    enum pgd_status want[2] = { PGD_ERR_UNSUPPORTED, PGD_ERR_INVALID_ARG };
    for (int i = 0; i < 2; i++) {
        struct pgd_engine_params p = pgd_engine_default_params();
        p.model_dir = fixture_dir("llama-f32");
        p.kv_cache_dtype = bad[i];
        struct pgd_engine *e = NULL;
        char err[512] = "";
        cr_assert_eq(pgd_engine_create(&p, &e, err, sizeof err), want[i], "%s: %s", bad[i], err);
        cr_assert_null(e);
        cr_assert(strstr(err, "kv_cache_dtype"), "%s", err);
    }
}

/* ---- whole models --------------------------------------------------------------------------- */
enum { N_NEW = 8 };

/* The largest logit minus the second largest, over the largest |logit|. */
static double top2_gap(const float *x, int n)
{
    int a = argmax(x, n);
    float second = -INFINITY, mx = 0;
    for (int i = 0; i < n; i++) {
        if (i != a && x[i] > second)
            second = x[i];
        mx = fmaxf(mx, fabsf(x[i]));
    }
    return (x[a] - second) / (mx > 0 ? mx : 1);
}

struct model_cmp {
    int n_prompts, n_same;           /* prompts, and those with every greedy token equal */
    double worst;                    /* the largest logit difference, of the largest logit */
};

/* Every prompt of dir's reference.json on the runner rf (float32 cache) and r8 (FP8), in
 * chunks of 5 then decode steps: the first logits, and the last ones while the tokens agree,
 * within MODEL_TOL of the float32 cache's; greedy tokens equal up to a step where the
 * float32 run's top two logits are within 2 * MODEL_TOL (a near-tie the error may flip). */
static struct model_cmp compare_runs(const char *dir, struct pgd__runner *rf,
                                     struct pgd__runner *r8)
{
    struct model_cmp m = { 0, 0, 0 };
    int vocab = pgd__runner_desc(rf)->vocab_size;
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    cr_assert_not_null(ref, "%s: %s", path, je.text);
    int32_t table[64], out_f[N_NEW], out_8[N_NEW];
    for (int b = 0; b < 64; b++)
        table[b] = (b * 37 + 11) % 64;
    float *ff = malloc((size_t)vocab * 4), *lf = malloc((size_t)vocab * 4);
    float *f8 = malloc((size_t)vocab * 4), *l8 = malloc((size_t)vocab * 4);
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        greedy_run(rf, prompt, np, N_NEW, 5, table, out_f, ff, lf);
        greedy_run(r8, prompt, np, N_NEW, 5, table, out_8, f8, l8);
        double d = rel_max_diff(f8, ff, vocab);
        cr_assert_leq(d, MODEL_TOL, "%s prompt %zu: first logits off by %g of the largest", dir,
                      ci, d);
        m.worst = fmax(m.worst, d);
        int i = 0;
        while (i < N_NEW && out_8[i] == out_f[i])
            i++;
        if (i == N_NEW) {
            double dl = rel_max_diff(l8, lf, vocab);
            cr_assert_leq(dl, MODEL_TOL, "%s prompt %zu: last logits off by %g", dir, ci, dl);
            m.worst = fmax(m.worst, dl);
            m.n_same++;
        } else {
            /* The float32 run's logits that chose token i: a near-tie, or a failure. */
            int32_t scratch[N_NEW];
            greedy_run(rf, prompt, np, i, 5, table, scratch, NULL, lf);
            double gap = top2_gap(lf, vocab);
            cr_assert_leq(gap, 2 * MODEL_TOL, "%s prompt %zu: token %d is %d on the fp8 cache, "
                          "%d on the float32 one, whose top-2 gap %g is no near-tie", dir, ci,
                          i, out_8[i], out_f[i], gap);
        }
        m.n_prompts++;
        free(prompt);
    }
    free(ff); free(lf); free(f8); free(l8);
    json_decref(ref);
    return m;
}

/* The fixture on a float32 cache and an FP8 one (scales 1.0, vLLM's default: the fixture has
 * none). How many prompts keep every greedy token is printed, not asserted (see the top). */
static void check_fixture(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    const char *dir = fixture_dir(name);
    struct pgd__runner *rf = fixture_runner_kv(reg, dir, NULL, PGD_DTYPE_COUNT, 64, 16, 8);
    struct pgd__runner *r8 = fixture_runner_kv(reg, dir, NULL, PGD_DTYPE_F8_E4M3, 64, 16, 8);
    cr_assert_eq(pgd__runner_kv_dtype(r8), PGD_DTYPE_F8_E4M3);
    struct model_cmp m = compare_runs(dir, rf, r8);
    fprintf(stderr, "%s: fp8 KV cache: %d of %d prompts with identical greedy tokens, logits "
            "within %.4f of the largest\n", name, m.n_same, m.n_prompts, m.worst);
    pgd__runner_destroy(rf);
    pgd__runner_destroy(r8);
    pgd_registry_destroy(reg);
}

Test(kv_fp8, llama_matches_the_float32_cache) { check_fixture("llama-f32"); }
Test(kv_fp8, qwen2_matches_the_float32_cache) { check_fixture("qwen2-f32"); }
Test(kv_fp8, qwen3_matches_the_float32_cache) { check_fixture("qwen3-f32"); }
Test(kv_fp8, mistral_sliding_window_matches_the_float32_cache) { check_fixture("mistral-f32"); }

/* ---- the checkpoint's scales ---------------------------------------------------------------- */
/* A KV scale tensor to add to a checkpoint: name, dtype (F32, BF16 or F16), ndim (0 or 1),
 * value. */
struct scale_tensor {
    const char *name;
    enum pgd_dtype dtype;
    int ndim;
    float value;
};

/* A copy of fixture `name` (tmpdir [256]) whose checkpoint is two shards: the fixture's
 * model.safetensors and a second file holding the scale tensors, with the index naming
 * both, as a sharded llm-compressor checkpoint lays them out. Returns tmpdir. */
static const char *copy_with_scales(const char *name, const struct scale_tensor *sc, int n,
                                    char *tmpdir)
{
    fixture_copy_edited(fixture_dir(name), "config.json", "{", "{", tmpdir);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/model.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/model-00001-of-00002.safetensors", tmpdir);
    cr_assert_eq(rename(a, b), 0, "rename %s", a);
    /* the index: every tensor of shard 1, then the scales in shard 2 */
    struct pgd__weights *w;
    char err[512];
    cr_assert_eq(pgd__weights_open_file(b, &w, err, sizeof err), PGD_OK, "%s", err);
    json_t *map = json_object(), *hdr = json_object();
    for (size_t i = 0; i < pgd__weights_count(w); i++)
        json_object_set_new(map, pgd__weights_at(w, i)->name,
                            json_string("model-00001-of-00002.safetensors"));
    pgd__weights_close(w);
    uint8_t data[64];
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t sz = sc[i].dtype == PGD_DTYPE_F32 ? 4 : 2;
        if (sz == 4) {
            memcpy(data + off, &sc[i].value, 4);
        } else {
            uint16_t h = sc[i].dtype == PGD_DTYPE_BF16 ? pgd_f32_to_bf16(sc[i].value)
                                                       : pgd_f32_to_f16(sc[i].value);
            memcpy(data + off, &h, 2);
        }
        json_t *t = json_pack("{s:s, s:[], s:[I, I]}", "dtype",
                              sz == 4 ? "F32" : sc[i].dtype == PGD_DTYPE_BF16 ? "BF16" : "F16",
                              "shape", "data_offsets", (json_int_t)off, (json_int_t)(off + sz));
        if (sc[i].ndim == 1)
            json_array_append_new(json_object_get(t, "shape"), json_integer(1));
        json_object_set_new(hdr, sc[i].name, t);
        json_object_set_new(map, sc[i].name, json_string("model-00002-of-00002.safetensors"));
        off += sz;
    }
    char *h = json_dumps(hdr, JSON_COMPACT);
    size_t hl = (strlen(h) + 7) / 8 * 8;
    uint64_t hl64 = hl;
    snprintf(a, sizeof a, "%s/model-00002-of-00002.safetensors", tmpdir);
    FILE *fp = fopen(a, "wb");
    cr_assert_not_null(fp, "%s", a);
    fwrite(&hl64, 8, 1, fp);
    fputs(h, fp);
    for (size_t i = strlen(h); i < hl; i++)
        fputc(' ', fp);
    fwrite(data, 1, off, fp);
    fclose(fp);
    free(h);
    json_t *index = json_pack("{s:{}, s:o}", "metadata", "weight_map", map);
    snprintf(a, sizeof a, "%s/model.safetensors.index.json", tmpdir);
    cr_assert_eq(json_dump_file(index, a, 0), 0, "%s", a);
    json_decref(index);
    json_decref(hdr);
    return tmpdir;
}

/* The spellings vLLM reads: .k_scale / .v_scale (F32 scalar, BF16 [1]), the deprecated
 * .kv_scale for both (F16), ModelOpt's .k_proj.k_scale; a layer without any keeps 1.0. */
Test(kv_fp8, checkpoint_scales_are_read_per_layer)
{
    static const struct scale_tensor sc[] = {
        { "model.layers.0.self_attn.k_scale", PGD_DTYPE_F32, 0, 0.5f },
        { "model.layers.0.self_attn.v_scale", PGD_DTYPE_BF16, 1, 0.25f },
        { "model.layers.1.self_attn.kv_scale", PGD_DTYPE_F16, 0, 0.125f },
    };
    char tmp[256];
    copy_with_scales("llama-f32", sc, 3, tmp);
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = NULL;
    char err[1024] = "";
    cr_assert_eq(pgd__model_load(tmp, reg, PGD_DEVICE_CPU, &m, err, sizeof err), PGD_OK, "%s",
                 err);
    float k[2], v[2];
    int found = -1;
    cr_assert_eq(pgd__model_kv_scales(m, k, v, &found, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(found, 2);
    cr_assert(k[0] == 0.5f && v[0] == 0.25f && k[1] == 0.125f && v[1] == 0.125f,
              "k %g %g, v %g %g", k[0], k[1], v[0], v[1]);
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
    fixture_copy_remove(tmp);
}

Test(kv_fp8, a_bad_checkpoint_scale_is_refused_by_name)
{
    static const struct scale_tensor neg[] = {
        { "model.layers.1.self_attn.k_proj.k_scale", PGD_DTYPE_F32, 0, -2.0f },
    };
    static const struct scale_tensor far[] = {
        { "model.layers.7.self_attn.v_scale", PGD_DTYPE_F32, 0, 1.0f },
    };
    const struct scale_tensor *cases[2] = { neg, far };
    const char *want[2] = { "model.layers.1.self_attn.k_proj.k_scale", "layer index in [0, 2)" };
    for (int i = 0; i < 2; i++) {
        char tmp[256];
        copy_with_scales("llama-f32", cases[i], 1, tmp);
        struct pgd_registry *reg = fixture_registry(NULL);
        struct pgd__runner_params p;
        pgd__runner_default_params(&p);
        p.model_dir = tmp;
        p.registry = reg;
        p.num_blocks = 8;
        p.kv_cache_dtype = PGD_DTYPE_F8_E4M3;
        struct pgd__runner *r = NULL;
        char err[1024] = "";
        cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_ERR_FORMAT, "%s", err);
        cr_assert(strstr(err, want[i]), "%s", err);
        /* without an FP8 cache the scales are not read */
        p.kv_cache_dtype = PGD_DTYPE_COUNT;
        cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
        pgd__runner_destroy(r);
        pgd_registry_destroy(reg);
        fixture_copy_remove(tmp);
    }
}

/* A runner on a checkpoint with scales: the cache holds e4m3(x / scale) (its largest code
 * times the scale is the float32 cache's largest |K|, |V| to e4m3's 2^-4), and the model
 * reads it back through the same scales (logits within MODEL_TOL; scales of 1/8 would put
 * them far off if the read ignored them). */
Test(kv_fp8, runner_writes_and_reads_with_the_checkpoint_scales)
{
    static const struct scale_tensor sc[] = {
        { "model.layers.0.self_attn.k_scale", PGD_DTYPE_F32, 0, 0.125f },
        { "model.layers.0.self_attn.v_scale", PGD_DTYPE_F32, 0, 0.0625f },
        { "model.layers.1.self_attn.k_scale", PGD_DTYPE_F32, 0, 0.25f },
        { "model.layers.1.self_attn.v_scale", PGD_DTYPE_F32, 0, 0.03125f },
    };
    char tmp[256];
    copy_with_scales("llama-f32", sc, 4, tmp);
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__runner *rf = fixture_runner_kv(reg, tmp, NULL, PGD_DTYPE_COUNT, 64, 16, 8);
    struct pgd__runner *r8 = fixture_runner_kv(reg, tmp, NULL, PGD_DTYPE_F8_E4M3, 64, 16, 8);
    for (int l = 0; l < 2; l++)
        cr_assert(r8->kv.k_scale[l] == sc[2 * l].value && r8->kv.v_scale[l] == sc[2 * l + 1].value,
                  "layer %d: k_scale %g v_scale %g", l, r8->kv.k_scale[l], r8->kv.v_scale[l]);
    /* One prompt's prefill on both: layer 0's K/V (from the embeddings alone) are the same
     * values, so each e4m3 code times its scale is the float32 cache's value to e4m3's
     * precision (relative 2^-4; no code saturates: |x| / scale < 448). */
    static const int32_t prompt[12] = { 1, 17, 300, 42, 9, 256, 77, 5, 130, 64, 3, 99 };
    int32_t table[1] = { 0 }, none[1];
    greedy_run(rf, prompt, 12, 0, 0, table, none, NULL, NULL);
    greedy_run(r8, prompt, 12, 0, 0, table, none, NULL, NULL);
    size_t cells = (size_t)12 * r8->kv.n_kv_heads * r8->kv.head_dim;
    for (int kv = 0; kv < 2; kv++) {
        const float *f = kv ? rf->kv.v[0] : rf->kv.k[0];
        const uint8_t *b = kv ? r8->kv.v[0] : r8->kv.k[0];
        float scale = kv ? r8->kv.v_scale[0] : r8->kv.k_scale[0];
        for (size_t i = 0; i < cells; i++) {
            float got = pgd_fp8_e4m3_to_float(b[i]) * scale;
            cr_assert_neq(b[i] & 0x7f, 0x7e, "layer 0 %s elem %zu saturated", kv ? "V" : "K", i);
            cr_assert_leq(fabsf(got - f[i]), fmaxf(fabsf(f[i]) / 16, scale / 1024),
                          "layer 0 %s elem %zu: %g stored as %g", kv ? "V" : "K", i, f[i], got);
        }
    }
    struct model_cmp m = compare_runs(tmp, rf, r8);
    fprintf(stderr, "llama-f32 with checkpoint scales: %d of %d prompts identical, logits within "
            "%.4f\n", m.n_same, m.n_prompts, m.worst);
    pgd__runner_destroy(rf);
    pgd__runner_destroy(r8);
    pgd_registry_destroy(reg);
    fixture_copy_remove(tmp);
}
