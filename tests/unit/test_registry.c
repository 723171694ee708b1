/* The plugin registry: loading real shared objects built as fixtures (tests/fixtures/plugins/, built
 * into tests/fixtures/plugins/.libs), refusing the bad ones with messages that name the file and the
 * problem, scanning directories and the search path, and the `pagoda plugins` command. */
#include "tests/lib/test_common.h"
#include "tests/lib/capture.h"
#include <pagoda/registry.h>
#include <pagoda/frontend.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURE_DIR PGD_TEST_BUILDDIR "/tests/fixtures/plugins/.libs"
#define PAGODA_BIN PGD_TEST_BUILDDIR "/tools/pagoda"

/* The full path of fixture `name` ("good_arch" -> FIXTURE_DIR/good_arch.so); static buffer,
 * one of four rotating so that a few may be used in one expression. */
static const char *fixture(const char *name)
{
    static char bufs[4][4096];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s.so", FIXTURE_DIR, name);
    return b;
}

/* True when the object at path is mapped in this process right now. */
static bool is_mapped(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        return false;
    dlclose(h);
    return true;
}

static void setup(void)
{
    unsetenv("PAGODA_PLUGIN_PATH");
    /* Most tests check that refused files are unloaded: let the registry dlclose. */
    unsetenv("PAGODA_NO_DLCLOSE");
}

PGD_TEST_SUITE_INIT(registry, setup);

static struct pgd_registry *new_registry(void)
{
    char err[256] = "";
    struct pgd_registry *reg = NULL;
    cr_assert_eq(pgd_registry_create(&reg, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_not_null(reg);
    return reg;
}

/* A fresh temporary directory; *dir receives its path (caller frees it, after rm_tree). */
static char *make_tmpdir(void)
{
    char *d = strdup("/tmp/pgd-registry-XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

static void rm_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void link_fixture(const char *dir, const char *as, const char *name)
{
    char link[4200];
    snprintf(link, sizeof link, "%s/%s", dir, as);
    cr_assert_eq(symlink(fixture(name), link), 0, "%s", link);
}

/* ---- good plugins ---------------------------------------------------------------------- */

Test(registry, loads_an_architecture_plugin_and_calls_its_vtable)
{
    struct pgd_registry *reg = new_registry();
    char err[512] = "";
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_arch"), err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert_eq(pgd_registry_count(reg), 1);
    const char *path = NULL;
    const struct pgd_plugin *p = pgd_registry_at(reg, 0, &path);
    cr_assert_str_eq(path, fixture("good_arch"));
    cr_assert_eq(p->kind, PGD_PLUGIN_ARCH);
    cr_assert_str_eq(p->name, "fixture-arch");
    cr_assert_str_eq(p->version, "1.2.3");
    cr_assert_eq(pgd_registry_find(reg, PGD_PLUGIN_ARCH, "fixture-arch"), p);
    cr_assert_null(pgd_registry_find(reg, PGD_PLUGIN_QUANT, "fixture-arch"));
    cr_assert_null(pgd_registry_find(reg, PGD_PLUGIN_ARCH, "llama"));
    cr_assert_eq(pgd_registry_find_arch(reg, "FixtureForCausalLM"), p);
    cr_assert_eq(pgd_registry_find_arch(reg, "FixtureMoeForCausalLM"), p);
    cr_assert_null(pgd_registry_find_arch(reg, "LlamaForCausalLM"));
    cr_assert_null(pgd_registry_find_arch(reg, "fixtureforcausallm"));

    char archs[128];
    pgd_registry_list_archs(reg, archs, sizeof archs);
    cr_assert_str_eq(archs, "FixtureForCausalLM, FixtureMoeForCausalLM");
    /* Truncated to fit, NUL-terminated. */
    char small[10];
    pgd_registry_list_archs(reg, small, sizeof small);
    cr_assert_str_eq(small, "FixtureFo");

    /* The vtable works across the dlopen boundary; the plugin's error comes from libpagoda's
     * pgd_errf, resolved by the RTLD_LOCAL plugin against the host's copy. */
    cr_assert_eq(p->arch->load(NULL, NULL, NULL, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_str_eq(err, "fixture-arch: load needs desc and model");
    struct pgd_model_desc desc = { 0 };
    void *model = NULL;
    cr_assert_eq(p->arch->load(NULL, &desc, &model, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_not_null(model);
    cr_assert_eq(desc.n_layers, 2);
    cr_assert_eq(desc.vocab_size, 8);
    p->arch->forward(model, NULL);
    p->arch->destroy(model);   /* freed inside the plugin: ASan checks the pairing */
    pgd_registry_destroy(reg);
}

Test(registry, loads_a_plugin_of_another_kind)
{
    struct pgd_registry *reg = new_registry();
    char err[512] = "";
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_quant"), err, sizeof err), PGD_OK,
                 "%s", err);
    const struct pgd_plugin *q = pgd_registry_find(reg, PGD_PLUGIN_QUANT, "fixture-quant");
    cr_assert_not_null(q);
    cr_assert_str_eq(q->version, "0.4");
    cr_assert_null(pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, "fixture-quant"));
    char archs[64];
    pgd_registry_list_archs(reg, archs, sizeof archs);
    cr_assert_str_eq(archs, "(none)");
    /* Found by the quantization_config.quant_method strings it claims. */
    cr_assert_eq(pgd_registry_find_quant(reg, "fixture-q4"), q);
    cr_assert_eq(pgd_registry_find_quant(reg, "fixture-q8"), q);
    cr_assert_null(pgd_registry_find_quant(reg, "gptq"));
    cr_assert_null(pgd_registry_find_arch(reg, "fixture-q4"), "a method is no architecture");
    char methods[64];
    pgd_registry_list_quant_methods(reg, methods, sizeof methods);
    cr_assert_str_eq(methods, "fixture-q4, fixture-q8");
    cr_assert_eq(q->quant->struct_size, sizeof(struct pgd_quant_ops));
    pgd_registry_destroy(reg);
}

Test(registry, empty_registry)
{
    struct pgd_registry *reg = new_registry();
    cr_assert_eq(pgd_registry_count(reg), 0);
    cr_assert_eq(pgd_registry_refused_count(reg), 0);
    cr_assert_null(pgd_registry_find_arch(reg, "LlamaForCausalLM"));
    cr_assert_null(pgd_registry_find_quant(reg, "gptq"));
    char archs[64];
    pgd_registry_list_archs(reg, archs, sizeof archs);
    cr_assert_str_eq(archs, "(none)");
    pgd_registry_list_quant_methods(reg, archs, sizeof archs);
    cr_assert_str_eq(archs, "(none)");
    cr_assert_str_eq(pgd_registry_search_path(reg), "");
    pgd_registry_destroy(reg);
    pgd_registry_destroy(NULL);
}

Test(registry, plugin_kind_names)
{
    cr_assert_str_eq(pgd_plugin_kind_str(PGD_PLUGIN_ARCH), "architecture");
    cr_assert_str_eq(pgd_plugin_kind_str(PGD_PLUGIN_QUANT), "quant");
    cr_assert_str_eq(pgd_plugin_kind_str(PGD_PLUGIN_FRONTEND), "frontend");
    cr_assert_str_eq(pgd_plugin_kind_str((enum pgd_plugin_kind)0), "unknown");
}

/* ---- refusals ---------------------------------------------------------------------------- */

/* One bad fixture: the status its load must fail with and what the message must say
 * (besides the file's path, which every refusal names). */
struct refusal {
    const char *fixture;
    enum pgd_status status;
    const char *needles[4];        /* NULL-terminated */
};

/* Loads the fixture into a registry that already holds good_quant, expects the status and
 * a message naming the file and containing each needle; then checks the file was unloaded
 * and the registry still works. */
static void expect_refused(const struct refusal *r)
{
    struct pgd_registry *reg = new_registry();
    char err[1024] = "";
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_quant"), err, sizeof err), PGD_OK,
                 "%s", err);
    const char *path = fixture(r->fixture);
    cr_assert_not(is_mapped(path), "%s is mapped before the test", path);

    enum pgd_status got = pgd_registry_load_file(reg, path, err, sizeof err);
    cr_assert_eq(got, r->status, "%s: status %s (%d), expected %s: %s", r->fixture,
                 pgd_status_str(got), got, pgd_status_str(r->status), err);
    cr_assert(strstr(err, path) != NULL, "message does not name %s: %s", path, err);
    for (const char *const *needle = r->needles; *needle; needle++)
        cr_assert(strstr(err, *needle) != NULL, "%s: message lacks \"%s\": %s", r->fixture,
                  *needle, err);

    cr_assert_not(is_mapped(path), "%s was refused but is still mapped", path);
    cr_assert_eq(pgd_registry_count(reg), 1);
    cr_assert_eq(pgd_registry_refused_count(reg), 0, "load_file reports to its caller only");
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_arch"), err, sizeof err), PGD_OK,
                 "registry unusable after refusing %s: %s", r->fixture, err);
    cr_assert_eq(pgd_registry_count(reg), 2);
    cr_assert_not_null(pgd_registry_find_arch(reg, "FixtureForCausalLM"));
    pgd_registry_destroy(reg);
}

/* The refusals whose messages are fixed text. */
static const struct refusal fixed_refusals[] = {
    { "bad_noentry", PGD_ERR_PLUGIN, { "no pagoda_plugin_init symbol" } },
    { "bad_null", PGD_ERR_PLUGIN, { "pagoda_plugin_init() returned NULL" } },
    { "bad_kind", PGD_ERR_PLUGIN, { "unknown plugin kind 42" } },
    { "bad_noname", PGD_ERR_PLUGIN, { "quant plugin's descriptor has an empty name" } },
    { "bad_novtable", PGD_ERR_PLUGIN,
      { "frontend plugin 'fixture-novtable' has a NULL vtable" } },
    { "bad_arch_ops", PGD_ERR_PLUGIN,
      { "architecture plugin 'fixture-half' has no forward, destroy in its vtable",
        "struct pgd_arch_ops needs load, forward and destroy" } },
    { "bad_noarchs", PGD_ERR_PLUGIN, { "'fixture-noarchs' claims no architectures" } },
    { "bad_quant_ops", PGD_ERR_PLUGIN,
      { "quant plugin 'fixture-half-quant' has no linear, release in its vtable",
        "struct pgd_quant_ops needs configure, is_quantized, load_linear, linear, "
        "free_linear and release" } },
};

Test(registry, refuses_each_bad_fixture_naming_the_file_and_the_problem)
{
    for (size_t i = 0; i < sizeof fixed_refusals / sizeof fixed_refusals[0]; i++)
        expect_refused(&fixed_refusals[i]);
}

Test(registry, refuses_other_abi_naming_both_versions)
{
    char theirs[64], ours[64];
    snprintf(theirs, sizeof theirs, "built for plugin ABI version %u,", PGD_ABI_VERSION + 1);
    snprintf(ours, sizeof ours, "this pagoda has plugin ABI version %u", PGD_ABI_VERSION);
    expect_refused(&(struct refusal){ "bad_abi", PGD_ERR_ABI, { theirs, ours } });
}

Test(registry, refuses_short_descriptor_struct_size)
{
    char size[64], first[64];
    snprintf(size, sizeof size, "struct_size is %zu bytes",
             offsetof(struct pgd_plugin, description));
    snprintf(first, sizeof first, "smaller than the %zu bytes of the first struct pgd_plugin",
             sizeof(struct pgd_plugin));
    expect_refused(&(struct refusal){ "bad_size", PGD_ERR_ABI, { size, first } });
}

/* A vtable shorter than its struct's first version: refused by struct_size (PGD_ERR_ABI),
 * naming the struct, the size the plugin declared and the first version's. Every field of
 * today's arch and quant structs belongs to their first version, so sizeof is that size;
 * the frontend's first version ends before run (added for foreground frontends). The arch and
 * quant fixtures' structs really are that short: under ASan, a read of any field past
 * struct_size would crash here. */
Test(registry, refuses_vtables_shorter_than_their_first_version)
{
    static const struct {
        const char *fixture, *type, *plugin;
        size_t declared, first;
    } cases[] = {
        { "bad_arch_size", "pgd_arch_ops", "architecture plugin 'fixture-short-arch'",
          offsetof(struct pgd_arch_ops, forward), sizeof(struct pgd_arch_ops) },
        { "bad_quant_size", "pgd_quant_ops", "quant plugin 'fixture-short-quant'",
          offsetof(struct pgd_quant_ops, configure), sizeof(struct pgd_quant_ops) },
        { "bad_frontend_size", "pgd_frontend_ops", "frontend plugin 'fixture-short-frontend'",
          offsetof(struct pgd_frontend_ops, destroy), offsetof(struct pgd_frontend_ops, run) },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[128], sizes[160];
        snprintf(what, sizeof what, "%s: struct %s has struct_size %zu bytes", cases[i].plugin,
                 cases[i].type, cases[i].declared);
        snprintf(sizes, sizeof sizes, "smaller than the %zu bytes of its first version",
                 cases[i].first);
        expect_refused(&(struct refusal){ cases[i].fixture, PGD_ERR_ABI, { what, sizes } });
    }
}

/* The host's test before it reads a field added after a struct's first version. */
Test(registry, struct_has_tells_which_fields_a_plugin_knows)
{
    struct pgd_arch_ops ops = { .struct_size = sizeof ops };
    cr_assert(PGD_STRUCT_HAS(&ops, struct pgd_arch_ops, destroy));
    ops.struct_size = offsetof(struct pgd_arch_ops, destroy);
    cr_assert_not(PGD_STRUCT_HAS(&ops, struct pgd_arch_ops, destroy));
    cr_assert(PGD_STRUCT_HAS(&ops, struct pgd_arch_ops, forward));
    struct pgd_quant_ops q = { .struct_size = offsetof(struct pgd_quant_ops, linear) };
    cr_assert(PGD_STRUCT_HAS(&q, struct pgd_quant_ops, load_linear));
    cr_assert_not(PGD_STRUCT_HAS(&q, struct pgd_quant_ops, linear));
}

Test(registry, refuses_a_file_that_is_not_a_shared_object)
{
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/text.so", dir);
    write_file(path, "this is a text file, not an ELF shared object\n");
    /* What the dynamic loader itself says about it must reach the message. */
    cr_assert_null(dlopen(path, RTLD_NOW | RTLD_LOCAL));
    char *dl_why = strdup(dlerror());

    struct pgd_registry *reg = new_registry();
    char err[1024] = "";
    cr_assert_eq(pgd_registry_load_file(reg, path, err, sizeof err), PGD_ERR_PLUGIN);
    cr_assert(strstr(err, path) == err, "message does not start with the file: %s", err);
    cr_assert(strstr(err, "not a loadable shared object") != NULL, "%s", err);
    cr_assert(strstr(err, dl_why) != NULL, "message lacks dlerror's \"%s\": %s", dl_why, err);
    cr_assert_eq(pgd_registry_count(reg), 0);
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_quant"), err, sizeof err), PGD_OK,
                 "%s", err);
    pgd_registry_destroy(reg);
    free(dl_why);
    rm_tree(dir);
    free(dir);
}

Test(registry, refuses_a_missing_file_and_bad_arguments)
{
    struct pgd_registry *reg = new_registry();
    char err[1024] = "";
    const char *path = FIXTURE_DIR "/no_such_plugin.so";
    cr_assert_eq(pgd_registry_load_file(reg, path, err, sizeof err), PGD_ERR_NOT_FOUND);
    cr_assert(strstr(err, path) != NULL, "%s", err);
    cr_assert_eq(pgd_registry_load_file(reg, NULL, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_registry_load_file(reg, "", err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_registry_create(NULL, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd_registry_count(reg), 0);
    pgd_registry_destroy(reg);
}

Test(registry, refuses_a_second_plugin_with_one_name_naming_both_files)
{
    struct pgd_registry *reg = new_registry();
    char err[1024] = "";
    cr_assert_eq(pgd_registry_load_file(reg, fixture("dup_a"), err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd_registry_load_file(reg, fixture("dup_b"), err, sizeof err), PGD_ERR_PLUGIN);
    char want[8400];
    snprintf(want, sizeof want, "%s: plugin name 'fixture-dup' is already taken by %s",
             fixture("dup_b"), fixture("dup_a"));
    cr_assert_str_eq(err, want);
    cr_assert_not(is_mapped(fixture("dup_b")));
    /* The same file again is refused too, and stays loaded once. */
    cr_assert_eq(pgd_registry_load_file(reg, fixture("dup_a"), err, sizeof err), PGD_ERR_PLUGIN);
    cr_assert(strstr(err, "already loaded") != NULL, "%s", err);
    cr_assert_eq(pgd_registry_count(reg), 1);
    const struct pgd_plugin *d = pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, "fixture-dup");
    cr_assert_not_null(d);
    cr_assert_str_eq(d->version, "a");
    cr_assert(is_mapped(fixture("dup_a")));
    pgd_registry_destroy(reg);
    cr_assert_not(is_mapped(fixture("dup_a")), "destroy must dlclose");
}

Test(registry, no_dlclose_switch_keeps_plugins_mapped)
{
    setenv("PAGODA_NO_DLCLOSE", "1", 1);
    struct pgd_registry *reg = new_registry();
    char err[1024] = "";
    cr_assert_eq(pgd_registry_load_file(reg, fixture("good_quant"), err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert_eq(pgd_registry_load_file(reg, fixture("bad_null"), err, sizeof err),
                 PGD_ERR_PLUGIN);
    pgd_registry_destroy(reg);
    cr_assert(is_mapped(fixture("good_quant")));
    cr_assert(is_mapped(fixture("bad_null")));
}

/* The libpagoda.so the plugins link (good_arch does), in the build tree. This program links
 * the runtime itself (the convenience library), so that copy comes only with a plugin. */
#define LIBPAGODA PGD_TEST_BUILDDIR "/.libs/libpagoda.so"

/* Destroying the last registry unloads its plugins but not the libpagoda.so they linked:
 * unloaded, it would be mapped afresh by the next registry's plugins, which breaks its CUDA
 * kernels (a CPU engine then a CUDA engine in one process). The plugin, loaded again, works. */
Test(registry, the_libpagoda_plugins_link_outlives_the_registry)
{
    cr_assert_not(is_mapped(LIBPAGODA), "mapped before any plugin: the test means nothing");
    char err[512] = "";
    for (int round = 0; round < 2; round++) {
        struct pgd_registry *reg = new_registry();
        cr_assert_eq(pgd_registry_load_file(reg, fixture("good_arch"), err, sizeof err), PGD_OK,
                     "round %d: %s", round, err);
        cr_assert(is_mapped(LIBPAGODA));
        const struct pgd_plugin *p = pgd_registry_find(reg, PGD_PLUGIN_ARCH, "fixture-arch");
        cr_assert_not_null(p);
        /* Its message comes from pgd_errf across the dlopen boundary. */
        cr_assert_eq(p->arch->load(NULL, NULL, NULL, err, sizeof err), PGD_ERR_INVALID_ARG);
        cr_assert_str_eq(err, "fixture-arch: load needs desc and model");
        pgd_registry_destroy(reg);
        cr_assert_not(is_mapped(fixture("good_arch")), "round %d: destroy must dlclose", round);
        cr_assert(is_mapped(LIBPAGODA), "round %d: libpagoda.so was unloaded with the plugin",
                  round);
    }
}

/* ---- directories and the search path ----------------------------------------------------- */

Test(registry, scanning_the_fixture_dir_keeps_the_good_and_lists_the_refused)
{
    static const char *const refused[] = { "bad_abi", "bad_arch_ops", "bad_arch_size",
                                           "bad_frontend_size", "bad_kind", "bad_noarchs",
                                           "bad_noentry", "bad_noname", "bad_novtable",
                                           "bad_null", "bad_quant_ops", "bad_quant_size",
                                           "bad_size", "dup_b" };
    const size_t n_refused = sizeof refused / sizeof refused[0];
    struct pgd_registry *reg = new_registry();
    cr_assert_eq(pgd_registry_load_dir(reg, FIXTURE_DIR), 3);
    cr_assert_eq(pgd_registry_count(reg), 3);
    /* Loaded in file-name order. */
    static const char *const loaded[] = { "dup_a", "good_arch", "good_quant" };
    static const char *const names[] = { "fixture-dup", "fixture-arch", "fixture-quant" };
    for (size_t i = 0; i < 3; i++) {
        const char *path;
        const struct pgd_plugin *p = pgd_registry_at(reg, i, &path);
        cr_assert_str_eq(path, fixture(loaded[i]));
        cr_assert_str_eq(p->name, names[i]);
    }
    cr_assert_eq(pgd_registry_refused_count(reg), n_refused);
    for (size_t i = 0; i < n_refused; i++) {
        const char *path, *why;
        pgd_registry_refused_at(reg, i, &path, &why);
        cr_assert_str_eq(path, fixture(refused[i]));
        cr_assert(strstr(why, path) == why, "refusal does not start with its file: %s", why);
        cr_assert_not(is_mapped(path), "%s is still mapped", path);
    }
    const char *why;
    pgd_registry_refused_at(reg, n_refused - 1, NULL, &why);
    cr_assert(strstr(why, fixture("dup_a")) != NULL, "dup_b's refusal names dup_a: %s", why);
    /* Scanning again loads nothing new and refuses nothing twice. */
    cr_assert_eq(pgd_registry_load_dir(reg, FIXTURE_DIR), 0);
    cr_assert_eq(pgd_registry_count(reg), 3);
    cr_assert_eq(pgd_registry_refused_count(reg), n_refused);
    cr_assert_not_null(pgd_registry_find_arch(reg, "FixtureMoeForCausalLM"));
    pgd_registry_destroy(reg);
}

Test(registry, scan_takes_regular_so_files_and_links_to_them_only)
{
    char *dir = make_tmpdir();
    char path[4200], text_so[4200];
    snprintf(text_so, sizeof text_so, "%s/a_text.so", dir);
    write_file(text_so, "not ELF\n");
    link_fixture(dir, "b_arch.so", "good_arch");
    link_fixture(dir, "c_quant.so.1", "good_quant");     /* not *.so: ignored */
    snprintf(path, sizeof path, "%s/d_folder.so", dir);  /* a directory: ignored */
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.so", dir);          /* no name before .so: ignored */
    write_file(path, "x");

    struct pgd_registry *reg = new_registry();
    cr_assert_eq(pgd_registry_load_dir(reg, dir), 1);
    cr_assert_str_eq(pgd_registry_at(reg, 0, NULL)->name, "fixture-arch");
    cr_assert_eq(pgd_registry_refused_count(reg), 1);
    const char *rpath, *why;
    pgd_registry_refused_at(reg, 0, &rpath, &why);
    cr_assert_str_eq(rpath, text_so);
    cr_assert(strstr(why, "not a loadable shared object") != NULL, "%s", why);
    /* A missing directory is no error. */
    snprintf(path, sizeof path, "%s/nowhere", dir);
    cr_assert_eq(pgd_registry_load_dir(reg, path), 0);
    cr_assert_eq(pgd_registry_refused_count(reg), 1);
    pgd_registry_destroy(reg);
    rm_tree(dir);
    free(dir);
}

Test(registry, search_path_order_earlier_directory_wins)
{
    char *a = make_tmpdir(), *b = make_tmpdir(), *c = make_tmpdir();
    /* One name in three directories: extra dirs, then PAGODA_PLUGIN_PATH, then build dirs. */
    link_fixture(a, "dup.so", "dup_b");
    link_fixture(b, "dup.so", "dup_a");
    link_fixture(b, "quant.so", "good_quant");
    link_fixture(c, "dup.so", "dup_a");
    link_fixture(c, "arch.so", "good_arch");
    char env[8400], extra[8400], build[8400];
    snprintf(env, sizeof env, "%s::%s/", b, a);   /* empty entry, and a named again */
    setenv("PAGODA_PLUGIN_PATH", env, 1);
    snprintf(extra, sizeof extra, "%s", a);
    snprintf(build, sizeof build, "%s:/nonexistent/pagoda-plugins", c);

    struct pgd_registry *reg = new_registry();
    char err[256];
    cr_assert_eq(pgd_registry_set_build_dirs(reg, build, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd_registry_load_search_path(reg, extra), 3);
    char want[16800];
    snprintf(want, sizeof want, "%s:%s:%s:/nonexistent/pagoda-plugins:%s", a, b, c,
             pgd_registry_install_dir());
    cr_assert_str_eq(pgd_registry_search_path(reg), want);
    cr_assert_eq(pgd_registry_count(reg), 3);
    cr_assert_eq(pgd_registry_refused_count(reg), 0, "a shadowed name is skipped, not refused");
    const char *path;
    const struct pgd_plugin *dup = pgd_registry_at(reg, 0, &path);
    cr_assert_str_eq(dup->name, "fixture-dup");
    cr_assert_str_eq(dup->version, "b", "the extra dir comes before PAGODA_PLUGIN_PATH");
    cr_assert(strncmp(path, a, strlen(a)) == 0, "%s", path);
    cr_assert_str_eq(pgd_registry_at(reg, 1, NULL)->name, "fixture-quant");
    cr_assert_str_eq(pgd_registry_at(reg, 2, NULL)->name, "fixture-arch");
    pgd_registry_destroy(reg);

    /* Without the extra dir, PAGODA_PLUGIN_PATH's b comes first, then a (named later). */
    reg = new_registry();
    cr_assert_eq(pgd_registry_load_search_path(reg, NULL), 2);
    cr_assert_str_eq(pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, "fixture-dup")->version, "a");
    pgd_registry_destroy(reg);

    rm_tree(a); rm_tree(b); rm_tree(c);
    free(a); free(b); free(c);
}

Test(registry, install_dir_is_compiled_in)
{
    cr_assert_str_eq(pgd_registry_install_dir(), PGD_PLUGIN_INSTALL_DIR);
}

/* ---- the `pagoda plugins` command --------------------------------------------------------- */

/* Runs `pagoda <args>` from the build tree; returns its exit status and its stdout in *out
 * (caller frees). */
static int run_pagoda(const char *args, char **out)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "'%s' %s", PAGODA_BIN, args);
    int st;
    *out = pgd_test_capture(cmd, &st);
    cr_assert(WIFEXITED(st), "%s did not exit normally", cmd);
    return WEXITSTATUS(st);
}

/* The line of text that contains needle (copied into line), or false. */
static bool line_with(const char *text, const char *needle, char *line, size_t len)
{
    const char *at = strstr(text, needle);
    if (!at)
        return false;
    const char *start = at, *end = strchr(at, '\n');
    while (start > text && start[-1] != '\n')
        start--;
    if (!end)
        end = at + strlen(at);
    snprintf(line, len, "%.*s", (int)(end - start), start);
    return true;
}

Test(registry, pagoda_plugins_lists_loaded_and_refused)
{
    char *out;
    int rc = run_pagoda("plugins --plugin-dir '" FIXTURE_DIR "'", &out);
    cr_assert_eq(rc, 0, "pagoda plugins exited %d:\n%s", rc, out);
    char line[8192];
    cr_assert(strstr(out, "search path: " FIXTURE_DIR ":") == out, "%s", out);

    cr_assert(line_with(out, "fixture-arch ", line, sizeof line), "%s", out);
    cr_assert(strstr(line, "architecture") && strstr(line, "1.2.3") &&
              strstr(line, fixture("good_arch")), "%s", line);
    cr_assert(line_with(out, "architectures: FixtureForCausalLM, FixtureMoeForCausalLM", line,
                        sizeof line), "%s", out);
    cr_assert(line_with(out, "fixture-quant ", line, sizeof line), "%s", out);
    cr_assert(strstr(line, "quant") && strstr(line, "0.4") && strstr(line, fixture("good_quant")),
              "%s", line);
    cr_assert(line_with(out, "fixture-dup ", line, sizeof line), "%s", out);
    cr_assert(strstr(line, "frontend") && strstr(line, fixture("dup_a")), "%s", line);

    cr_assert(line_with(out, "quant methods: fixture-q4, fixture-q8", line, sizeof line),
              "%s", out);

    const char *refused = strstr(out, "\nrefused (14):\n");
    cr_assert_not_null(refused, "%s", out);
    static const char *const bad[] = { "bad_abi", "bad_arch_ops", "bad_arch_size",
                                       "bad_frontend_size", "bad_kind", "bad_noarchs",
                                       "bad_noentry", "bad_noname", "bad_novtable", "bad_null",
                                       "bad_quant_ops", "bad_quant_size", "bad_size", "dup_b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert(line_with(refused, fixture(bad[i]), line, sizeof line), "%s missing:\n%s",
                  bad[i], out);
        cr_assert(strncmp(line, "  ", 2) == 0 && strlen(line) > strlen(fixture(bad[i])) + 4,
                  "%s", line);
    }
    cr_assert(line_with(refused, "unknown plugin kind 42", line, sizeof line), "%s", out);
    /* No refused file shows up in the table above. */
    cr_assert(strstr(out, "fixture-half") == NULL || strstr(out, "fixture-half") > refused);
    free(out);
}

Test(registry, pagoda_plugins_usage)
{
    char *out;
    cr_assert_eq(run_pagoda("plugins --no-such-option 2>/dev/null", &out), 2);
    free(out);
    cr_assert_eq(run_pagoda("plugins --plugin-dir 2>/dev/null", &out), 2);
    free(out);
    cr_assert_eq(run_pagoda("plugins --help", &out), 0);
    cr_assert(strstr(out, "usage: pagoda plugins") != NULL, "%s", out);
    cr_assert(strstr(out, pgd_registry_install_dir()) != NULL, "%s", out);
    free(out);
    cr_assert_eq(run_pagoda("help", &out), 0);
    cr_assert(strstr(out, "  plugins ") != NULL, "%s", out);
    free(out);
}
