/* Test helpers for the model fixtures (see model_fixture.h). */
#include "tests/lib/model_fixture.h"
#include "runtime/engine/engine_backend.h"
#include "runtime/model/model.h"
#include "tests/lib/async_pair.h"
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* PGD_TEST_SRCDIR and PGD_TEST_PLUGIN_DIRS in the environment override the build's paths
 * (a build copied to another machine, e.g. the GPU machine). */
static const char *env_or(const char *var, const char *dflt)
{
    const char *v = getenv(var);
    return v && *v ? v : dflt;
}

const char *fixture_dir(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/tests/fixtures/models/%s", env_or("PGD_TEST_SRCDIR", PGD_TEST_SRCDIR),
             name);
    return buf;
}

struct pgd_registry *fixture_registry(const char *extra_dir)
{
    char err[1024] = "";
    struct pgd_registry *reg;
    cr_assert_eq(pgd_registry_create(&reg, err, sizeof err), PGD_OK, "%s", err);
    char dirs[8192];
    snprintf(dirs, sizeof dirs, "%s%s%s", extra_dir ? extra_dir : "", extra_dir ? ":" : "",
             env_or("PGD_TEST_PLUGIN_DIRS", PGD_BUILD_PLUGIN_DIRS));
    cr_assert_gt(pgd_registry_load_search_path(reg, dirs), 0, "no plugin found in %s", dirs);
    return reg;
}

enum pgd_status fixture_load_status(const char *dir, char *err, size_t errlen)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    struct pgd__model *m = NULL;
    enum pgd_status st = pgd__model_load(dir, reg, PGD_DEVICE_CPU, &m, err, errlen);
    pgd__model_destroy(m);
    pgd_registry_destroy(reg);
    return st;
}

json_t *fixture_json(const char *name, const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", fixture_dir(name), file);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    cr_assert_not_null(ref, "%s: %s", path, je.text);
    return ref;
}

json_t *fixture_reference(const char *name)
{
    return fixture_json(name, "reference.json");
}

const char *fixture_copy_edited(const char *src, const char *file, const char *from,
                                const char *to, char *tmpdir)
{
    snprintf(tmpdir, 256, "/tmp/pgd-test-fixture-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    char cmd[9000], path[600];
    snprintf(cmd, sizeof cmd, "cp -r %s/. %s/", src, tmpdir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/%s", tmpdir, file);
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "%s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    char *at = memmem(buf, (size_t)n, from, strlen(from));
    cr_assert_not_null(at, "%s has no '%s'", path, from);
    fp = fopen(path, "wb");
    cr_assert_not_null(fp, "%s", path);
    fwrite(buf, 1, (size_t)(at - buf), fp);
    fputs(to, fp);
    fwrite(at + strlen(from), 1, (size_t)(n - (at - buf) - (long)strlen(from)), fp);
    fclose(fp);
    free(buf);
    return tmpdir;
}

void fixture_copy_remove(char *tmpdir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (tmpdir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    tmpdir[0] = '\0';
}

struct pgd__runner *fixture_runner(struct pgd_registry *reg, const char *name, int num_blocks,
                                   int block_size, int max_seqs)
{
    return fixture_runner_dir(reg, fixture_dir(name), NULL, num_blocks, block_size, max_seqs);
}

struct pgd__runner *fixture_runner_dir(struct pgd_registry *reg, const char *dir,
                                       const char *quantization, int num_blocks, int block_size,
                                       int max_seqs)
{
    return fixture_runner_kv(reg, dir, quantization, PGD_DTYPE_COUNT, num_blocks, block_size,
                             max_seqs);
}

struct pgd__runner *fixture_runner_kv(struct pgd_registry *reg, const char *dir,
                                      const char *quantization, enum pgd_dtype kv_cache_dtype,
                                      int num_blocks, int block_size, int max_seqs)
{
    struct pgd__runner_params p;
    pgd__runner_default_params(&p);
    p.model_dir = dir;
    p.quantization = quantization;
    p.kv_cache_dtype = kv_cache_dtype;
    p.registry = reg;
    p.num_blocks = num_blocks;
    p.block_size = block_size;
    p.max_num_seqs = max_seqs;
    p.max_num_batched_tokens = 512;
    char err[1024] = "";
    struct pgd__runner *r = NULL;
    cr_assert_eq(pgd__runner_create(&p, &r, err, sizeof err), PGD_OK, "%s", err);
    return r;
}

float *json_floats(json_t *arr, int *n)
{
    cr_assert(json_is_array(arr));
    *n = (int)json_array_size(arr);
    float *v = malloc((size_t)*n * sizeof *v + 1);
    cr_assert_not_null(v);
    for (int i = 0; i < *n; i++)
        v[i] = (float)json_number_value(json_array_get(arr, (size_t)i));
    return v;
}

int32_t *json_ints(json_t *arr, int *n)
{
    cr_assert(json_is_array(arr));
    *n = (int)json_array_size(arr);
    int32_t *v = malloc((size_t)*n * sizeof *v + 1);
    cr_assert_not_null(v);
    for (int i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return v;
}

double rel_max_diff(const float *a, const float *b, int n)
{
    double maxd = 0, maxb = 0;
    for (int i = 0; i < n; i++) {
        maxd = fmax(maxd, fabs((double)a[i] - b[i]));
        maxb = fmax(maxb, fabs((double)b[i]));
    }
    return maxb > 0 ? maxd / maxb : maxd;
}

int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

void greedy_run(struct pgd__runner *r, const int32_t *prompt, int n_prompt, int n_new,
                int chunk, const int32_t *table, int32_t *out, float *first, float *last)
{
    int vocab = pgd__runner_desc(r)->vocab_size, bs = pgd__runner_block_size(r);
    int32_t *toks = malloc((size_t)(n_prompt + n_new + 1) * sizeof *toks);
    memcpy(toks, prompt, (size_t)n_prompt * sizeof *toks);
    int n = n_prompt, computed = 0;
    char err[1024] = "";
    for (int step = 0; step <= n_new; step++) {
        const float *logits = NULL;
        while (computed < n) {
            int take = n - computed;
            if (chunk > 0 && take > chunk)
                take = chunk;
            bool final = computed + take == n;
            struct pgd__step_seq s = { .tokens = toks + computed, .n_new = take,
                                       .n_computed = computed, .block_table = table,
                                       .n_blocks = (computed + take + bs - 1) / bs,
                                       .n_logits = final ? 1 : 0 };
            cr_assert_eq(pgd__runner_step(r, &s, 1, &logits, err, sizeof err), PGD_OK, "%s", err);
            computed += take;
        }
        if (step == 0 && first)
            memcpy(first, logits, (size_t)vocab * sizeof *first);
        if (step == n_new) {
            if (last)
                memcpy(last, logits, (size_t)vocab * sizeof *last);
            break;
        }
        toks[n] = argmax(logits, vocab);
        out[step] = toks[n++];
    }
    free(toks);
}

struct pgd_engine *model_engine_params(const char *name, struct pgd_engine_params *p)
{
    p->model_dir = fixture_dir(name);
    p->plugin_path = env_or("PGD_TEST_PLUGIN_DIRS", PGD_BUILD_PLUGIN_DIRS);
    struct pgd_engine *e;
    char err[1024] = "";
    cr_assert_eq(pgd_engine_create(p, &e, err, sizeof err), PGD_OK, "%s: %s", name, err);
    pgd__engine_set_paranoid(e, true);
    return e;
}

struct pgd_engine *model_engine_async_pair(const char *name, struct pgd_engine_params *p)
{
    p->model_dir = fixture_dir(name);
    p->plugin_path = env_or("PGD_TEST_PLUGIN_DIRS", PGD_BUILD_PLUGIN_DIRS);
    p->async_scheduling = true;
    struct pgd_engine *e;
    char err[1024] = "";
    cr_assert_eq(pgd__engine_create_wrapped(p, async_pair_wrap, &e, err, sizeof err), PGD_OK,
                 "%s: %s", name, err);
    pgd__engine_set_paranoid(e, true);
    return e;
}

long model_engine_late_steps(const struct pgd_engine *e)
{
    return async_pair_late_steps(e);
}

struct pgd_engine_params model_engine_sized(enum pgd_device device, int num_blocks,
                                            int block_size, int budget, int max_seqs)
{
    struct pgd_engine_params p = pgd_engine_default_params();
    p.device = device;
    p.num_blocks = num_blocks;
    p.block_size = block_size;
    p.max_num_batched_tokens = budget;
    p.max_num_seqs = max_seqs;
    return p;
}

struct pgd_engine *model_engine(const char *name, enum pgd_device device, int num_blocks,
                                int block_size, int budget, int max_seqs)
{
    struct pgd_engine_params p = model_engine_sized(device, num_blocks, block_size, budget,
                                                    max_seqs);
    return model_engine_params(name, &p);
}

void check_batched_first_logits(struct pgd__runner *r, const char *name, const char *ref_key,
                                double tol)
{
    json_t *ref = fixture_reference(name);
    int vocab = pgd__runner_desc(r)->vocab_size;
    json_t *cases = json_object_get(ref, "cases");
    int n = (int)json_array_size(cases);
    cr_assert_leq(n, 8, "%s: %d cases, at most 8 in a batch", name, n);
    struct pgd__step_seq seqs[8];
    int32_t *prompts[8], tables[8][16];
    float *refs[8];
    for (int s = 0; s < n; s++) {
        int np, nf;
        json_t *c = json_array_get(cases, (size_t)s);
        prompts[s] = json_ints(json_object_get(c, "prompt"), &np);
        refs[s] = json_floats(json_object_get(json_object_get(c, ref_key), "first_logits"), &nf);
        cr_assert_eq(nf, vocab, "%s case %d: %d reference logits, vocab %d", name, s, nf, vocab);
        for (int b = 0; b < 16; b++)
            tables[s][b] = 63 - (s * 16 + b) % 64;
        seqs[s] = (struct pgd__step_seq){ .tokens = prompts[s], .n_new = np, .n_computed = 0,
                                          .block_table = tables[s], .n_blocks = (np + 15) / 16,
                                          .n_logits = 1 };
    }
    const float *logits;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_step(r, seqs, n, &logits, err, sizeof err), PGD_OK, "%s", err);
    for (int s = 0; s < n; s++) {
        double d = rel_max_diff(logits + (size_t)s * vocab, refs[s], vocab);
        cr_assert_leq(d, tol, "%s: sequence %d in a batch of %d differs by %g", name, s, n, d);
        free(prompts[s]);
        free(refs[s]);
    }
    json_decref(ref);
}

/* One step of r over one sequence: tokens [n_computed, n_computed + n_new) on table[n_blocks];
 * the last row's logits into out[vocab] (NULL: none). */
static void one_step(struct pgd__runner *r, const int32_t *tokens, int n_new, int n_computed,
                     const int32_t *table, int n_blocks, float *out)
{
    struct pgd__step_seq ss = { .tokens = tokens, .n_new = n_new, .n_computed = n_computed,
                                .block_table = table, .n_blocks = n_blocks, .n_logits = 1 };
    const float *logits;
    char err[1024] = "";
    cr_assert_eq(pgd__runner_step(r, &ss, 1, &logits, err, sizeof err), PGD_OK, "%s", err);
    if (out)
        memcpy(out, logits, (size_t)pgd__runner_desc(r)->vocab_size * sizeof *out);
}

void check_swap_round_trip(struct pgd__runner *r)
{
    enum { NP = 21, MAXB = 16 };
    char err[1024] = "";
    cr_assert_eq(pgd__runner_swap_init(r, (size_t)64 << 20, err, sizeof err), PGD_OK, "%s", err);
    int bs = pgd__runner_block_size(r), nb = pgd__runner_num_blocks(r);
    int vocab = pgd__runner_desc(r)->vocab_size, n_swap = pgd__runner_num_swap_blocks(r);
    int k = (NP + 1 + bs - 1) / bs;             /* blocks for the prompt and one more token */
    cr_assert(k <= MAXB && 2 * k <= nb && k <= n_swap, "%d blocks of %d, %d host blocks", nb,
              bs, n_swap);
    int32_t prompt[NP + 1], other[NP], t1[MAXB], t2[MAXB], host[MAXB];
    for (int i = 0; i <= NP; i++)
        prompt[i] = 3 + (int32_t)((i * 37) % (vocab - 3));
    for (int i = 0; i < NP; i++)
        other[i] = 5 + (int32_t)((i * 101) % (vocab - 5));
    for (int i = 0; i < k; i++) {
        t1[i] = i;
        t2[i] = nb - 1 - 2 * i;                 /* descending, with gaps */
        host[i] = n_swap - 1 - i;
    }
    float *d1 = malloc((size_t)vocab * sizeof *d1), *d2 = malloc((size_t)vocab * sizeof *d2);
    cr_assert(d1 && d2);
    one_step(r, prompt, NP, 0, t1, k, NULL);                /* the prompt's KV */
    one_step(r, prompt + NP, 1, NP, t1, k, d1);             /* a decode step over it */
    cr_assert_eq(pgd__runner_swap_blocks(r, true, t1, host, k, err, sizeof err), PGD_OK, "%s",
                 err);
    one_step(r, other, NP, 0, t1, k, NULL);                 /* t1 now holds other KV */
    cr_assert_eq(pgd__runner_swap_blocks(r, false, t2, host, k, err, sizeof err), PGD_OK, "%s",
                 err);
    one_step(r, prompt + NP, 1, NP, t2, k, d2);
    cr_assert_arr_eq(d1, d2, (size_t)vocab * sizeof *d1, "the decode step over the blocks "
                     "swapped back differs from the one before the swap");
    one_step(r, prompt + NP, 1, NP, t1, k, d2);
    cr_assert(memcmp(d1, d2, (size_t)vocab * sizeof *d1) != 0, "the overwritten blocks give "
              "the same logits: the check cannot tell a lost swap");
    free(d1);
    free(d2);
}

void engine_settled_stats(struct pgd_engine *e, struct pgd_engine_stats *st)
{
    pgd_engine_get_stats(e, st);
    for (int i = 0; i < 2000 && st->step_timed < st->num_steps; i++) {
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        pgd_engine_get_stats(e, st);
    }
}
