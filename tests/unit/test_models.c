/* The whole forward pass against Hugging Face transformers: every fixture model's greedy
 * continuations and logits (tests/fixtures/models/<name>/reference.json), computed through
 * the paged KV cache in several batch layouts that must all agree with the reference. */
#include "tests/lib/model_fixture.h"
#include "runtime/model/model.h"
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <math.h>

/* The golden fixtures, one per architecture and dtype: X(suite, fixture directory). Each
 * gets a suite and the tests of MODEL_TESTS below. */
#define GOLDEN_FIXTURES(X)                                                             \
    X(llama_f32, "llama-f32")                                                          \
    X(llama_bf16, "llama-bf16")                                                        \
    X(qwen2_f32, "qwen2-f32")                                                          \
    X(qwen3_f32, "qwen3-f32")                                                          \
    X(mistral_f32, "mistral-f32")

#define DECLARE_SUITE(id, name) PGD_TEST_SUITE(id);
GOLDEN_FIXTURES(DECLARE_SUITE)
PGD_TEST_SUITE(cli);
PGD_TEST_SUITE(model_load);

#define F32_TOL 1e-4     /* the bound: float32 logits within 1e-4 relative */

/* A bf16 checkpoint: pagoda's CPU backend widens the weights to float32 and computes in
 * float32, which is exactly what transformers computes for the same weights upcast to
 * float32 (the "f32_compute" reference): those must agree to F32_TOL with the same greedy
 * tokens. Against transformers running natively in bf16 ("native"), every op's output is
 * rounded to 8 mantissa bits (relative error up to 2^-9 = 0.2% per rounding); over 2 layers
 * of about a dozen rounded ops each the logits drift by a few percent of their range, so
 * the bound is 5% of the largest logit, and greedy tokens are compared only up to the first
 * step where the native reference had a top-2 gap below that bound (a near-tie). */
#define BF16_NATIVE_TOL 0.05

static const char *reference_key(json_t *ref)
{
    return strcmp(json_string_value(json_object_get(ref, "dtype")), "float32") ? "f32_compute"
                                                                               : "native";
}

/* How a fixture's prompts are laid out in the paged cache. */
struct layout {
    int prefill_chunk;        /* tokens per prefill step; 0: the whole prompt in one step */
    bool scramble_blocks;     /* a non-contiguous block order instead of 0, 1, 2, ... */
};

/* The full check of one fixture in one batch layout. */
static void check_fixture(const char *name, struct layout layout)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    struct pgd__runner *r = fixture_runner(reg, name, 64, 16, 8);
    int vocab = pgd__runner_desc(r)->vocab_size;
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    const char *key = reference_key(ref);
    int32_t table[64];
    for (int b = 0; b < 64; b++)
        table[b] = layout.scramble_blocks ? (int32_t)((b * 37 + 11) % 64) : b;
    float *first = malloc((size_t)vocab * sizeof *first), *last = malloc((size_t)vocab * sizeof *last);
    int32_t out[256];
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np, ng, nf, nl;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        json_t *want = json_object_get(c, key);
        int32_t *greedy = json_ints(json_object_get(want, "greedy"), &ng);
        float *rf = json_floats(json_object_get(want, "first_logits"), &nf);
        float *rl = json_floats(json_object_get(want, "last_logits"), &nl);
        cr_assert_eq(ng, n_new);
        cr_assert_eq(nf, vocab);
        greedy_run(r, prompt, np, n_new, layout.prefill_chunk, table, out, first, last);
        for (int i = 0; i < n_new; i++)
            cr_assert_eq(out[i], greedy[i], "%s prompt %zu (len %d): token %d is %d, transformers "
                         "gives %d", name, ci, np, i, out[i], greedy[i]);
        double d1 = rel_max_diff(first, rf, vocab), d2 = rel_max_diff(last, rl, vocab);
        cr_assert_leq(d1, F32_TOL, "%s prompt %zu: first logits differ by %g relative", name, ci, d1);
        cr_assert_leq(d2, F32_TOL, "%s prompt %zu: last logits differ by %g relative", name, ci, d2);
        free(prompt);
        free(greedy);
        free(rf);
        free(rl);
    }
    free(first);
    free(last);
    pgd__runner_destroy(r);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

/* Native-bf16 comparison (see BF16_NATIVE_TOL). */
static void check_bf16_native(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    struct pgd__runner *r = fixture_runner(reg, name, 64, 16, 8);
    int vocab = pgd__runner_desc(r)->vocab_size;
    int n_new = (int)json_integer_value(json_object_get(ref, "n_new"));
    int32_t table[64], out[256];
    for (int b = 0; b < 64; b++)
        table[b] = b;
    float *first = malloc((size_t)vocab * sizeof *first);
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        int np, ng, nf;
        int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
        json_t *nat = json_object_get(c, "native");
        int32_t *greedy = json_ints(json_object_get(nat, "greedy"), &ng);
        float *rf = json_floats(json_object_get(nat, "first_logits"), &nf);
        greedy_run(r, prompt, np, n_new, 0, table, out, first, NULL);
        double d = rel_max_diff(first, rf, vocab);
        cr_assert_leq(d, BF16_NATIVE_TOL, "%s prompt %zu: logits differ from native bf16 by %g",
                      name, ci, d);
        /* The first token is safe unless the native reference itself is near a tie. */
        float top = rf[argmax(rf, vocab)], second = -1e30f;
        for (int i = 0; i < vocab; i++)
            if (i != argmax(rf, vocab) && rf[i] > second)
                second = rf[i];
        if ((top - second) / fabsf(top) > 2 * BF16_NATIVE_TOL)
            cr_assert_eq(out[0], greedy[0], "%s prompt %zu: first token", name, ci);
        free(prompt);
        free(greedy);
        free(rf);
    }
    free(first);
    pgd__runner_destroy(r);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

/* All prompts of a fixture in one step, each sequence with its own blocks: every row's
 * logits equal its sequence's reference. */
static void check_batched(const char *name)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference(name);
    struct pgd__runner *r = fixture_runner(reg, name, 64, 16, 8);
    check_batched_first_logits(r, name, reference_key(ref), F32_TOL);
    pgd__runner_destroy(r);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

#define MODEL_TESTS(id, name)                                                          \
    Test(id, greedy_and_logits) { check_fixture(name, (struct layout){ 0 }); }         \
    Test(id, chunked_prefill_scrambled_blocks)                                         \
    {                                                                                  \
        check_fixture(name, (struct layout){ .prefill_chunk = 5, .scramble_blocks = true }); \
    }                                                                                  \
    Test(id, batched_sequences) { check_batched(name); }

GOLDEN_FIXTURES(MODEL_TESTS)
Test(llama_bf16, native_bf16_within_tolerance) { check_bf16_native("llama-bf16"); }

/* ---- refusals ----------------------------------------------------------------------------- */
static char tmpdir[256];

/* Copies a fixture into a temp dir, replacing config.json's text `from` with `to`. */
static const char *edited_fixture(const char *name, const char *from, const char *to)
{
    return fixture_copy_edited(fixture_dir(name), "config.json", from, to, tmpdir);
}

static void cleanup_tmp(void)
{
    fixture_copy_remove(tmpdir);
}

/* Checkpoints whose config.json says something the plugin cannot compute (one text edit
 * of a fixture's config each): refused with the status and a message naming the problem. */
Test(model_load, bad_configs_are_refused_naming_the_problem, .fini = cleanup_tmp)
{
    static const struct {
        const char *what, *fixture, *from, *to;
        enum pgd_status status;
        const char *needles[4];    /* NULL-terminated */
    } cases[] = {
        { "an unknown architecture lists those available", "llama-f32", "\"LlamaForCausalLM\"",
          "\"FancyNetForCausalLM\"", PGD_ERR_UNSUPPORTED,
          { "FancyNetForCausalLM", "available architectures: ", "LlamaForCausalLM" } },
        { "a key that changes the math", "llama-f32", "\"mlp_bias\"",
          "\"logit_softcapping\": 30.0, \"mlp_bias\"", PGD_ERR_UNSUPPORTED,
          { "logit_softcapping", "config.json" } },
        { "an unsupported rope scaling", "llama-f32", "\"llama3\"", "\"yarn\"",
          PGD_ERR_UNSUPPORTED, { "yarn" } },
        { "a tensor shape the config disagrees with", "llama-f32", "\"intermediate_size\": 128",
          "\"intermediate_size\": 96", PGD_ERR_FORMAT, { "gate_proj.weight", "[128, 64]" } },
        { "qwen layer_types sliding without a window", "qwen2-f32",
          "\"full_attention\",\n    \"full_attention\"",
          "\"sliding_attention\",\n    \"full_attention\"", PGD_ERR_FORMAT,
          { "sliding_window is not set" } },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = edited_fixture(cases[i].fixture, cases[i].from, cases[i].to);
        char err[1024] = "";
        enum pgd_status st = fixture_load_status(dir, err, sizeof err);
        cr_assert_eq(st, cases[i].status, "%s: status %s: %s", cases[i].what,
                     pgd_status_str(st), err);
        for (const char *const *needle = cases[i].needles; *needle; needle++)
            cr_assert(strstr(err, *needle), "%s: message lacks \"%s\": %s", cases[i].what,
                      *needle, err);
        cleanup_tmp();
    }
}

Test(model_load, missing_config_names_path)
{
    char err[1024] = "";
    cr_assert_eq(fixture_load_status("/nonexistent/model", err, sizeof err), PGD_ERR_NOT_FOUND);
    cr_assert(strstr(err, "/nonexistent/model/config.json"), "%s", err);
}

/* A temp copy of fixture `name` (config.json rewritten, the weights linked) whose config
 * sets key to the JSON text value. Removed by cleanup_tmp. */
static const char *fixture_with_key(const char *name, const char *key, const char *value)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pgd-test-model-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char path[512], weights[4096];
    snprintf(path, sizeof path, "%s/config.json", fixture_dir(name));
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    cr_assert_not_null(cfg, "%s: %s", path, je.text);
    json_t *v = json_loads(value, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "%s: %s", value, je.text);
    cr_assert_eq(json_object_set_new(cfg, key, v), 0);
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    cr_assert_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0, "%s", path);
    json_decref(cfg);
    snprintf(weights, sizeof weights, "%s/model.safetensors", fixture_dir(name));
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    cr_assert_eq(symlink(weights, path), 0, "%s", path);
    return tmpdir;
}

/* config.json values that change the math: out of range is refused before any plugin reads
 * them, naming the file, the key and the value; in range (or null) loads. The registry
 * holds the fixture quant plugin (fixture-q4, fixture-q8) beside the in-tree plugins. */
Test(model_load, math_values_out_of_range_are_refused_by_name, .fini = cleanup_tmp)
{
    static const struct {
        const char *key, *value;
        enum pgd_status status;
        const char *message;       /* after "<dir>/config.json: " */
    } cases[] = {
        { "rms_norm_eps", "0", PGD_ERR_FORMAT,
          "\"rms_norm_eps\" = 0 is out of range (must be a number > 0)" },
        { "rms_norm_eps", "-0.5", PGD_ERR_FORMAT, "\"rms_norm_eps\" = -0.5 is out of range" },
        { "rms_norm_eps", "\"1e-6\"", PGD_ERR_FORMAT, "\"rms_norm_eps\" = \"1e-6\" is out of range" },
        { "rope_theta", "-10000", PGD_ERR_FORMAT, "\"rope_theta\" = -10000 is out of range" },
        { "max_position_embeddings", "0", PGD_ERR_FORMAT,
          "\"max_position_embeddings\" = 0 is out of range (must be an integer > 0)" },
        { "max_position_embeddings", "-256", PGD_ERR_FORMAT,
          "\"max_position_embeddings\" = -256 is out of range" },
        { "max_position_embeddings", "255.5", PGD_ERR_FORMAT,
          "\"max_position_embeddings\" = 255.5 is out of range" },
        { "hidden_act", "\"relu2\"", PGD_ERR_UNSUPPORTED,
          "\"hidden_act\" = \"relu2\" is not an activation pagoda computes (silu, swish, "
          "gelu_pytorch_tanh)" },
        { "hidden_act", "\"gelu\"", PGD_ERR_UNSUPPORTED, "\"hidden_act\" = \"gelu\" is not" },
        { "hidden_act", "1", PGD_ERR_UNSUPPORTED, "\"hidden_act\" = 1 is not an activation" },
        { "rope_scaling", "\"linear\"", PGD_ERR_FORMAT,
          "\"rope_scaling\" = \"linear\" is not an object (must be an object or null)" },
        { "rope_scaling", "[8.0]", PGD_ERR_FORMAT, "\"rope_scaling\" = [8.0] is not an object" },
        { "quantization_config", "\"gptq\"", PGD_ERR_FORMAT,
          "\"quantization_config\" = \"gptq\" is not an object" },
        { "quantization_config", "{\"quant_method\": \"hqq\", \"bits\": 4}", PGD_ERR_UNSUPPORTED,
          "\"quantization_config.quant_method\" = \"hqq\" is not supported: no quant plugin "
          "claims it (claimed: " },
        { "quantization_config", "{\"bits\": 4}", PGD_ERR_FORMAT,
          "\"quantization_config.quant_method\" = (missing) must be a string" },
        { "quantization_config", "{\"quant_method\": 4}", PGD_ERR_FORMAT,
          "\"quantization_config.quant_method\" = 4 must be a string" },
        /* In range: these load. */
        { "rms_norm_eps", "1e-05", PGD_OK, NULL },
        { "max_position_embeddings", "512", PGD_OK, NULL },
        { "hidden_act", "\"swish\"", PGD_OK, NULL },
        { "rope_scaling", "null", PGD_OK, NULL },
        { "quantization_config", "null", PGD_OK, NULL },
        /* Claimed: the plugin's configure decides (the fixture's refuses everything). */
        { "quantization_config", "{\"quant_method\": \"fixture-q8\"}", PGD_ERR_UNSUPPORTED,
          "quantization \"fixture-q8\": the fixture-quant plugin refused it" },
    };
    struct pgd_registry *reg = fixture_registry(PGD_TEST_BUILDDIR "/tests/fixtures/plugins/.libs");
    cr_assert_not_null(pgd_registry_find_quant(reg, "fixture-q8"));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *dir = fixture_with_key("llama-f32", cases[i].key, cases[i].value);
        char err[1024] = "", want[1024] = "";
        struct pgd__model *m = NULL;
        enum pgd_status st = pgd__model_load(dir, reg, PGD_DEVICE_CPU, &m, err, sizeof err);
        cr_assert_eq(st, cases[i].status, "%s = %s: status %s, expected %s: %s", cases[i].key,
                     cases[i].value, pgd_status_str(st), pgd_status_str(cases[i].status), err);
        if (cases[i].message) {
            snprintf(want, sizeof want, "%s/config.json: %s", dir, cases[i].message);
            cr_assert(strncmp(err, want, strlen(want)) == 0, "%s = %s:\n got: %s\nwant: %s...",
                      cases[i].key, cases[i].value, err, want);
            cr_assert_null(m);
        } else {
            cr_assert_not_null(m);
        }
        pgd__model_destroy(m);
        cleanup_tmp();
    }
    pgd_registry_destroy(reg);
}

/* ---- the command line --------------------------------------------------------------------- */
Test(cli, generate_reproduces_transformers_greedy)
{
    json_t *ref = fixture_reference("llama-f32");
    json_t *c = json_array_get(json_object_get(ref, "cases"), 2);
    int np, ng;
    int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
    int32_t *greedy = json_ints(json_object_get(json_object_get(c, "native"), "greedy"), &ng);
    char cmd[8192], ids[4096] = "", want[4096] = "[";
    for (int i = 0; i < np; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", prompt[i]);
    for (int i = 0; i < ng; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%d", i ? ", " : "", greedy[i]);
    strcat(want, "]\n");
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --device cpu --model %s --prompt-ids %s "
             "--max-tokens %d --ignore-eos 2>/dev/null", PGD_TEST_BUILDDIR,
             fixture_dir("llama-f32"), ids, ng);
    int status;
    char *got = pgd_test_capture(cmd, &status);
    cr_assert_eq(status, 0, "%s", cmd);
    cr_assert_str_eq(got, want);
    free(got);
    free(prompt);
    free(greedy);
    json_decref(ref);
}

/* The Mistral fixture's window (16) is shorter than its prompts plus generation: the same
 * checkpoint with the window removed must give different logits for the long prompt, or the
 * window-matching test above proves nothing. */
Test(model_load, mistral_window_really_bites, .fini = cleanup_tmp)
{
    const char *dir = edited_fixture("mistral-f32", "\"sliding_window\": 16", "\"sliding_window\": null");
    struct pgd_registry *reg = fixture_registry(NULL);
    json_t *ref = fixture_reference("mistral-f32");
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = dir;
    p.registry = reg;
    p.num_blocks = 16;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__runner_desc(r)->sliding_window, 0);
    json_t *c = json_array_get(json_object_get(ref, "cases"), 3);      /* the 70-token prompt */
    int np, nf;
    int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
    float *rf = json_floats(json_object_get(json_object_get(c, "native"), "first_logits"), &nf);
    int32_t table[16], out[1];
    for (int b = 0; b < 16; b++)
        table[b] = b;
    float *first = malloc((size_t)nf * sizeof *first);
    greedy_run(r, prompt, np, 1, 0, table, out, first, NULL);
    cr_assert_gt(rel_max_diff(first, rf, nf), 1e-2, "full attention matched the windowed reference");
    free(first);
    free(prompt);
    free(rf);
    pgd__runner_destroy(r);
    json_decref(ref);
    pgd_registry_destroy(reg);
}

/* pagoda bench latency on the CPU with random weights from a fixture's config.json: every
 * table row is there (the GPU run is scripts/gpu_check.sh's). */
Test(cli, bench_latency_random_weights)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda bench latency --random-weights %s/config.json "
             "--device cpu --batch 1,3 --prompt-len 5,9 --context 4 --steps 2 --warmup 1 2>&1",
             PGD_TEST_BUILDDIR, fixture_dir("llama-f32"));
    int status;
    char *got = pgd_test_capture(cmd, &status);
    cr_assert_eq(status, 0, "%s\n%s", cmd, got);
    cr_assert(strstr(got, "(random weights)"), "%s", got);
    cr_assert(strstr(got, "\n     1 ") && strstr(got, "\n     3 "), "decode rows missing:\n%s", got);
    cr_assert(strstr(got, "\n       5 ") && strstr(got, "\n       9 "), "ttft rows missing:\n%s", got);
    free(got);
}

/* pagoda generate --random-weights: the fixture's config with random weights, the same
 * tokens every run, and not the checkpoint's (whose greedy tokens differ). */
Test(cli, generate_random_weights)
{
    char cmd[4096], *got[3];
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --device cpu %s %s%s --prompt-ids "
                 "5,17,3,99 --max-tokens 12 --ignore-eos 2>/dev/null", PGD_TEST_BUILDDIR,
                 k < 2 ? "--random-weights" : "--model", fixture_dir("llama-f32"),
                 k < 2 ? "/config.json" : "");
        int status;
        got[k] = pgd_test_capture(cmd, &status);
        cr_assert_eq(status, 0, "%s\n%s", cmd, got[k]);
        cr_assert(got[k][0] == '[' && strchr(got[k], ']'), "%s: %s", cmd, got[k]);
    }
    cr_assert_str_eq(got[0], got[1], "random weights, twice");
    cr_assert_str_neq(got[0], got[2], "random weights against the checkpoint's");
    for (int k = 0; k < 3; k++)
        free(got[k]);
}

/* --random-weights with --quantization fp8 on a 16-bit config: the FP8 model is the dense
 * random model quantized at load (pgd_model_random_dense), so its first logits are the
 * dense one's within FP8's rounding (measured: 12% of the largest logit at most), not an
 * unrelated model's (random codes: 141%). */
Test(cli, random_weights_quantized_at_load_are_the_dense_ones)
{
    char dir[] = "/tmp/pgd-test-rq-XXXXXX", cmd[8192], path[2][128];
    cr_assert_not_null(mkdtemp(dir));
    float *lg[2];
    int n[2];
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof path[k], "%s/logits%d.json", dir, k);
        snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --device cpu --random-weights "
                 "%s/config.json --prompt-ids 5,17,3,99 --max-tokens 2 --dump-logits %s%s "
                 ">/dev/null 2>&1", PGD_TEST_BUILDDIR, fixture_dir("llama-f32"), path[k],
                 k ? " --quantization fp8" : "");
        cr_assert_eq(system(cmd), 0, "%s", cmd);
        json_error_t je;
        json_t *j = json_load_file(path[k], 0, &je);
        cr_assert_not_null(j, "%s: %s", path[k], je.text);
        lg[k] = json_floats(json_object_get(j, "logits"), &n[k]);
        json_decref(j);
        unlink(path[k]);
    }
    rmdir(dir);
    cr_assert_eq(n[0], n[1]);
    double d = rel_max_diff(lg[1], lg[0], n[0]);
    cr_assert(d > 0 && d <= 0.3, "FP8 against dense random logits: %g of the largest", d);
    free(lg[0]);
    free(lg[1]);
}

/* --dump-logits writes the logits after the prompt: they are transformers' first_logits. */
Test(cli, generate_dump_logits_matches_reference)
{
    json_t *ref = fixture_reference("llama-f32");
    json_t *c = json_array_get(json_object_get(ref, "cases"), 1);
    int np, nf;
    int32_t *prompt = json_ints(json_object_get(c, "prompt"), &np);
    float *want = json_floats(json_object_get(json_object_get(c, "native"), "first_logits"), &nf);
    char dir[] = "/tmp/pgd-test-dump-XXXXXX", path[64], cmd[8192], ids[4096] = "";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/logits.json", dir);
    for (int i = 0; i < np; i++)
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? "," : "", prompt[i]);
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --device cpu --model %s --prompt-ids %s "
             "--max-tokens 2 --dump-logits %s >/dev/null 2>&1", PGD_TEST_BUILDDIR,
             fixture_dir("llama-f32"), ids, path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    json_error_t je;
    json_t *got = json_load_file(path, 0, &je);
    cr_assert_not_null(got, "%s: %s", path, je.text);
    cr_assert_eq(json_integer_value(json_object_get(got, "n_prompt")), np);
    cr_assert_eq(json_integer_value(json_object_get(got, "vocab_size")), nf);
    int ng;
    float *logits = json_floats(json_object_get(got, "logits"), &ng);
    cr_assert_eq(ng, nf);
    double d = rel_max_diff(logits, want, nf);
    cr_assert_leq(d, F32_TOL, "dumped logits differ from transformers by %g relative", d);
    unlink(path);
    rmdir(dir);
    free(logits);
    json_decref(got);
    free(want);
    free(prompt);
    json_decref(ref);
}

/* ---- pagoda generate --prompts-file: many requests through the engine together --------- */
Test(cli, prompts_file_runs_every_case_together)
{
    json_t *ref = fixture_reference("llama-f32");
    char path[] = "/tmp/pgd-prompts-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *fp = fdopen(fd, "w");
    size_t ci;
    json_t *c;
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        json_t *line = json_pack("{s:O, s:i, s:b}", "prompt_ids", json_object_get(c, "prompt"),
                                 "max_tokens", 32, "ignore_eos", 1);
        char *txt = json_dumps(line, JSON_COMPACT);
        fprintf(fp, "%s\n", txt);
        free(txt);
        json_decref(line);
    }
    fclose(fp);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --device cpu --model %s --prompts-file %s "
             "--max-num-seqs 3 2>/dev/null", PGD_TEST_BUILDDIR, fixture_dir("llama-f32"), path);
    int status;
    char *out = pgd_test_capture(cmd, &status);
    unlink(path);
    cr_assert_eq(status, 0, "%s", cmd);
    char *save, *line = strtok_r(out, "\n", &save);
    json_array_foreach(json_object_get(ref, "cases"), ci, c) {
        cr_assert_not_null(line, "missing output line %zu", ci);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert_not_null(o, "%s", line);
        cr_assert_eq(json_integer_value(json_object_get(o, "index")), (json_int_t)ci);
        json_t *ids = json_object_get(json_array_get(json_object_get(o, "outputs"), 0), "token_ids");
        cr_assert(json_equal(ids, json_object_get(json_object_get(c, "native"), "greedy")),
                  "case %zu: %s", ci, line);
        json_t *usage = json_object_get(o, "usage");
        cr_assert_eq(json_integer_value(json_object_get(usage, "completion_tokens")), 32);
        cr_assert_eq(json_integer_value(json_object_get(usage, "prompt_tokens")),
                     (json_int_t)json_array_size(json_object_get(c, "prompt")));
        json_decref(o);
        line = strtok_r(NULL, "\n", &save);
    }
    cr_assert_null(line, "extra output: %s", line);
    free(out);
    json_decref(ref);
}

/* Bad command lines: `pagoda` exits non-zero with a message naming what is wrong. Each
 * args has one %s, the llama-f32 fixture's directory. */
Test(cli, bad_arguments_are_refused_by_name)
{
    static const struct {
        const char *args, *needle;
    } cases[] = {
        { "generate --model %s --prompt-ids 1,x,3", "not a comma-separated list" },
        { "generate --model %s --prompt-ids 5,99999", "99999" },
        { "generate --model %s --prompt-ids 5,6 --dump-logits /nonexistent/dir/logits.json",
          "/nonexistent/dir/logits.json" },
        { "bench latency --random-weights %s/reference.json --device cpu", "config.json" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[4096], cmd[8192];
        snprintf(args, sizeof args, cases[i].args, fixture_dir("llama-f32"));
        snprintf(cmd, sizeof cmd, "%s/tools/pagoda %s 2>&1", PGD_TEST_BUILDDIR, args);
        int status;
        char *out = pgd_test_capture(cmd, &status);
        cr_assert_neq(status, 0, "%s: exited 0:\n%s", cmd, out);
        cr_assert(strstr(out, cases[i].needle), "%s: output lacks \"%s\":\n%s", cmd,
                  cases[i].needle, out);
        free(out);
    }
}

Test(cli, prompts_file_errors_name_file_and_line)
{
    char path[] = "/tmp/pgd-prompts-XXXXXX";
    int fd = mkstemp(path);
    FILE *fp = fdopen(fd, "w");
    fprintf(fp, "{\"prompt_ids\": [1, 2]}\n\n{\"prompt_ids\": [3], \"temperature\": \"hot\"}\n");
    fclose(fp);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/tools/pagoda generate --model %s --prompts-file %s 2>&1",
             PGD_TEST_BUILDDIR, fixture_dir("llama-f32"), path);
    int status;
    char *out = pgd_test_capture(cmd, &status);
    unlink(path);
    cr_assert_neq(status, 0);
    char want[256];
    snprintf(want, sizeof want, "%s:3: \"temperature\" must be a number", path);
    cr_assert(strstr(out, want), "%s", out);
    free(out);
}

/* ---- sampling through the runner ---------------------------------------------------------- */
#include "runtime/sample/sample_rows.h"

/* The runner's step_sample on the CPU equals full logits plus the CPU sampler (the engine's
 * old path): one step of three sequences with prompt-logprobs rows, sampled rows with
 * logprobs and penalties, a greedy row and rows with nothing to do. (Greedy-only steps,
 * the argmax path, are the engine_llama tests' greedy requests.) */
Test(llama_f32, runner_step_sample_equals_logits_and_the_cpu_sampler)
{
    struct pgd__runner_params rp;
    pgd__runner_default_params(&rp);
    struct pgd_registry *reg = fixture_registry(NULL);
    char err[512];
    rp.model_dir = fixture_dir("llama-f32");
    rp.registry = reg;
    rp.num_blocks = 64;
    rp.block_size = 4;
    struct pgd__runner *r;
    cr_assert_eq(pgd__runner_create(&rp, &r, err, sizeof err), PGD_OK, "%s", err);
    int V = pgd__runner_desc(r)->vocab_size;
    enum { S = 3 };
    int32_t toks[S][24];
    int n[S] = { 9, 14, 5 }, nl[S] = { 9, 1, 3 };
    int32_t tables[S][8];
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < n[s]; i++) toks[s][i] = 3 + (int32_t)((s * 131 + i * 37) % 400);
        for (int b = 0; b < 8; b++) tables[s][b] = s * 8 + b;
    }
    struct pgd__step_seq seqs[S];
    for (int s = 0; s < S; s++)
        seqs[s] = (struct pgd__step_seq){ .tokens = toks[s], .n_new = n[s], .n_computed = 0,
                                          .block_table = tables[s], .n_blocks = 8,
                                          .n_logits = nl[s] };
    struct pgd_sampling_params sp[S];
    for (int s = 0; s < S; s++) sp[s] = pgd_sampling_default_params();
    sp[0].top_k = 50;
    sp[0].top_p = 0.9f;
    sp[1].repetition_penalty = 1.3f;
    sp[1].frequency_penalty = 0.5f;
    sp[1].temperature = 0.7f;
    sp[2].temperature = 0;
    static const int32_t eos[1] = { 2 };
    struct pgd__sample_row rows[13];
    int k = 0;
    for (int s = 0; s < S; s++)
        for (int j = 0; j < nl[s]; j++, k++) {
            int p = n[s] - nl[s] + j;
            rows[k] = (struct pgd__sample_row){ .kind = PGD__ROW_SKIP, .n_top = -1 };
            if (j == nl[s] - 1)
                rows[k] = (struct pgd__sample_row){
                    .kind = PGD__ROW_SAMPLE, .n_top = s == 2 ? -1 : 4,
                    .ctx = { .sp = &sp[s], .tokens = toks[s], .n_prompt = n[s] - 2, .n_out = 2,
                             .eos = eos, .n_eos = 1, .seed = 99 + (uint64_t)s, .child = 1 } };
            else if (s == 0 && j % 2 == 0)
                rows[k] = (struct pgd__sample_row){ .kind = PGD__ROW_TARGET,
                                                    .target = toks[s][p + 1], .n_top = 3 };
        }
    cr_assert_eq(k, 13);
    struct pgd__sample_result res[13];
    cr_assert_eq(pgd__runner_step_sample(r, seqs, S, rows, res, err, sizeof err), PGD_OK, "%s",
                 err);
    const float *logits;
    cr_assert_eq(pgd__runner_step(r, seqs, S, &logits, err, sizeof err), PGD_OK, "%s", err);
    struct pgd__sampler smp;
    cr_assert_eq(pgd__sampler_init(&smp, V, err, sizeof err), PGD_OK);
    float *row = malloc((size_t)V * sizeof *row);
    for (int i = 0; i < 13; i++) {
        const float *raw = logits + (size_t)i * V;
        struct pgd_logprob chosen, top[4];
        if (rows[i].kind == PGD__ROW_SKIP) {
            cr_assert_eq(res[i].token, -1);
            continue;
        }
        int32_t tok = rows[i].target;
        if (rows[i].kind == PGD__ROW_SAMPLE) {
            memcpy(row, raw, (size_t)V * sizeof *row);
            tok = pgd__sampler_sample(&smp, &rows[i].ctx, row);
            cr_assert_eq(res[i].token, tok, "row %d: step_sample %d, sampler %d", i,
                         res[i].token, tok);
        }
        if (rows[i].n_top < 0)
            continue;
        pgd__logprobs(raw, V, tok, rows[i].n_top, &chosen, top);
        cr_assert_eq(memcmp(&res[i].chosen, &chosen, sizeof chosen), 0, "row %d", i);
        cr_assert_eq(memcmp(res[i].top, top, (size_t)rows[i].n_top * sizeof *top), 0, "row %d", i);
    }
    free(row);
    pgd__sampler_fini(&smp);
    pgd__runner_destroy(r);
    pgd_registry_destroy(reg);
}
