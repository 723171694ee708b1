/* The hub client's pieces that need no network: hub ids and commit ids, the file
 * selection (default set, --include/--exclude globs), the retry waits, the environment's
 * settings, the cache files (refs, snapshot links, .no_exist, locks) as huggingface_hub
 * lays them out and the scan of what the cache holds. The protocol itself is tested
 * against the mock hub (test_hub_fetch.py). */
#include "config.h"
#include "tests/lib/test_common.h"
#include "runtime/hub/filter.h"
#include "runtime/hub/http.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PGD_TEST_SUITE(hub);

static const char *const C1 = "0123456789abcdef0123456789abcdef01234567";

Test(hub, repo_ids)
{
    static const char *const good[] = { "Qwen/Qwen2.5-0.5B-Instruct", "meta-llama/Llama-3.1-8B",
                                        "a/b", "org_x/name.v2@main", "o/n@refs/pr/1" };
    static const char *const bad[] = { "Qwen", "a/b/c", "/b", "a/", "a/b@", "a/../b", "a/b--c",
                                       "a/.b", "a b/c", "-a/b", "qwen2.5-0.5b-instruct", "" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_expect(pgd__hub_is_repo_id(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect(!pgd__hub_is_repo_id(bad[i]), "%s", bad[i]);
    char *repo, *rev, err[256];
    cr_assert_eq(pgd__hub_split_id("o/n@refs/pr/1", &repo, &rev, err, sizeof err), PGD_OK);
    cr_expect_str_eq(repo, "o/n");
    cr_expect_str_eq(rev, "refs/pr/1");
    free(repo);
    free(rev);
    cr_assert_eq(pgd__hub_split_id("o/n", &repo, &rev, err, sizeof err), PGD_OK);
    cr_expect_null(rev);
    free(repo);
    cr_expect_eq(pgd__hub_split_id("nope", &repo, &rev, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_expect(strstr(err, "'nope' is not a hub id"), "%s", err);
    cr_expect(pgd__hub_is_commit(C1));
    cr_expect(!pgd__hub_is_commit("0123456789ABCDEF0123456789abcdef01234567"));
    cr_expect(!pgd__hub_is_commit("0123456"));
}

static bool sel(const char *path, const char *inc, const char *exc)
{
    const char *i[] = { inc }, *e[] = { exc };
    return pgd__hub_selected(path, i, inc ? 1 : 0, e, exc ? 1 : 0);
}

Test(hub, default_set_and_globs)
{
    static const char *const in[] = { "config.json", "model.safetensors",
                                      "model-00001-of-00004.safetensors",
                                      "model.safetensors.index.json", "tokenizer.json",
                                      "chat_template.jinja", "quantize_config.json",
                                      "quant_config.json", "quantization_config.json" };
    static const char *const out[] = { "pytorch_model.bin", "consolidated.00.pth",
                                       "original/params.json", "onnx/model.safetensors",
                                       "README.md", "model.gguf" };
    for (size_t k = 0; k < sizeof in / sizeof in[0]; k++)
        cr_expect(sel(in[k], NULL, NULL), "%s", in[k]);
    for (size_t k = 0; k < sizeof out / sizeof out[0]; k++)
        cr_expect(!sel(out[k], NULL, NULL), "%s", out[k]);
    /* huggingface_hub's pattern rules: '*' crosses '/', "dir/" is the whole folder. */
    cr_expect(sel("original/params.json", "original/", NULL));
    cr_expect(sel("a/b/c.bin", "*.bin", NULL));
    cr_expect(sel("onnx/model.safetensors", "*", NULL));
    cr_expect(!sel("model.safetensors", NULL, "*.safetensors"));
    cr_expect(!sel("original/x.pth", "*", "original/"));
    cr_expect(sel("config.json", "*", "original/"));
}

Test(hub, backoff_and_retryable)
{
    struct pgd__hub_config c = { .backoff_ms = 500 };
    cr_expect_eq(pgd__hub_backoff_ms(&c, 0, -1), 500);
    cr_expect_eq(pgd__hub_backoff_ms(&c, 2, -1), 2000);
    cr_expect_eq(pgd__hub_backoff_ms(&c, 10, -1), 8000);
    cr_expect_eq(pgd__hub_backoff_ms(&c, 0, 3), 3000);      /* Retry-After wins */
    cr_expect_eq(pgd__hub_backoff_ms(&c, 0, 9999), 120000); /* capped */
    cr_expect(pgd__hub_retryable(CURLE_OK, 429));
    cr_expect(pgd__hub_retryable(CURLE_OK, 503));
    cr_expect(!pgd__hub_retryable(CURLE_OK, 501));
    cr_expect(!pgd__hub_retryable(CURLE_OK, 404));
    cr_expect(pgd__hub_retryable(CURLE_PARTIAL_FILE, 200));
    cr_expect(!pgd__hub_retryable(CURLE_WRITE_ERROR, 200));
    cr_expect(pgd__hub_same_host("http://h:1/a", "http://H:1/b?x"));
    cr_expect(!pgd__hub_same_host("http://h:1/a", "http://h:2/a"));
    cr_expect(!pgd__hub_same_host("https://huggingface.co/x", "https://cdn-lfs.hf.co/x"));
}

Test(hub, settings_from_the_environment)
{
    char home[] = "/tmp/pgd-hub-env-XXXXXX", path[512], err[256];
    cr_assert_not_null(mkdtemp(home));
    snprintf(path, sizeof path, "%s/token", home);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("hf_from_file\n", f);
    fclose(f);
    setenv("HF_HOME", home, 1);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HUGGINGFACE_HUB_CACHE");
    unsetenv("HF_TOKEN");
    unsetenv("HF_TOKEN_PATH");
    setenv("HF_ENDPOINT", "http://mirror.example//", 1);
    setenv("HF_HUB_OFFLINE", "TRUE", 1);
    struct pgd__hub_config c;
    cr_assert_eq(pgd__hub_config_from_env(&c, NULL, err, sizeof err), PGD_OK);
    snprintf(path, sizeof path, "%s/hub", home);
    cr_expect_str_eq(c.cache_dir, path);
    cr_expect_str_eq(c.endpoint, "http://mirror.example");
    cr_expect_str_eq(c.token, "hf_from_file");
    cr_expect(c.offline);
    pgd__hub_config_free(&c);
    setenv("HF_TOKEN", "hf_env", 1);
    setenv("HF_HUB_CACHE", "/elsewhere", 1);
    unsetenv("HF_HUB_OFFLINE");
    cr_assert_eq(pgd__hub_config_from_env(&c, "/download-dir", err, sizeof err), PGD_OK);
    cr_expect_str_eq(c.cache_dir, "/download-dir");   /* --download-dir wins */
    cr_expect_str_eq(c.token, "hf_env");
    cr_expect(!c.offline);
    pgd__hub_config_free(&c);
    unlink(path);
    snprintf(path, sizeof path, "%s/token", home);
    unlink(path);
    rmdir(home);
}

static int rm_entry(const char *p, const struct stat *sb, int t, struct FTW *ftw)
{
    return t == FTW_DP ? rmdir(p) : unlink(p);
}

Test(hub, cache_files)
{
    char cache[] = "/tmp/pgd-hub-cache-XXXXXX", dir[512], p[640], target[256], commit[41];
    char err[512];
    cr_assert_not_null(mkdtemp(cache));
    cr_assert_eq(pgd__hub_repo_dir(cache, "Org/Name", dir, sizeof dir, err, sizeof err), PGD_OK);
    snprintf(p, sizeof p, "%s/models--Org--Name", cache);
    cr_expect_str_eq(dir, p);
    /* refs: written bare (no newline), read back; a commit needs no ref; escapes refused */
    cr_assert_eq(pgd__hub_write_ref(dir, "refs/pr/1", C1, err, sizeof err), PGD_OK);
    snprintf(p, sizeof p, "%s/refs/refs/pr/1", dir);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f);
    char buf[64] = "";
    cr_expect_eq(fread(buf, 1, sizeof buf, f), 40);
    fclose(f);
    cr_assert_eq(pgd__hub_read_ref(dir, "refs/pr/1", commit, err, sizeof err), PGD_OK);
    cr_expect_str_eq(commit, C1);
    cr_expect_eq(pgd__hub_read_ref(dir, "main", commit, err, sizeof err), PGD_ERR_NOT_FOUND);
    cr_expect_eq(pgd__hub_write_ref(dir, "../../x", C1, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert_eq(pgd__hub_read_ref(dir, C1, commit, err, sizeof err), PGD_OK);
    /* snapshot links: relative, one ../ per folder of the path */
    cr_assert_eq(pgd__hub_link_snapshot(dir, C1, "a/b/w.safetensors", "e7", err, sizeof err),
                 PGD_OK);
    snprintf(p, sizeof p, "%s/snapshots/%s/a/b/w.safetensors", dir, C1);
    ssize_t n = readlink(p, target, sizeof target - 1);
    cr_assert_gt(n, 0);
    target[n] = '\0';
    cr_expect_str_eq(target, "../../../../blobs/e7");
    cr_expect_eq(pgd__hub_link_snapshot(dir, C1, "../evil", "e7", err, sizeof err),
                 PGD_ERR_FORMAT);
    pgd__hub_mark_no_exist(dir, C1, "generation_config.json");
    snprintf(p, sizeof p, "%s/.no_exist/%s/generation_config.json", dir, C1);
    cr_expect_eq(access(p, F_OK), 0);
    /* locks: a second holder is told to wait */
    snprintf(p, sizeof p, "%s/.locks/models--Org--Name/e7.lock", cache);
    int a = pgd__hub_lock(p, false, err, sizeof err);
    cr_assert_geq(a, 0, "%s", err);
    cr_expect_eq(pgd__hub_lock(p, false, err, sizeof err), -2);
    close(a);
    int b = pgd__hub_lock(p, false, err, sizeof err);
    cr_expect_geq(b, 0);
    close(b);
    nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The cache scan: repos sorted by name, each snapshot a revision with its file count, and
 * every ref naming its revision ("main, v1" in readdir's order). */
Test(hub, cache_scan)
{
    static const char *const C2 = "89abcdef0123456789abcdef0123456789abcdef";
    char cache[] = "/tmp/pgd-hub-scan-XXXXXX", dir[512], err[512];
    cr_assert_not_null(mkdtemp(cache));
    cr_assert_eq(pgd__hub_repo_dir(cache, "zeta/Model", dir, sizeof dir, err, sizeof err),
                 PGD_OK);
    cr_assert_eq(pgd__hub_link_snapshot(dir, C1, "config.json", "b1", err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__hub_repo_dir(cache, "Alpha/Model", dir, sizeof dir, err, sizeof err),
                 PGD_OK);
    cr_assert_eq(pgd__hub_link_snapshot(dir, C1, "config.json", "b1", err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__hub_link_snapshot(dir, C1, "w/model.safetensors", "b2", err, sizeof err),
                 PGD_OK);
    cr_assert_eq(pgd__hub_link_snapshot(dir, C2, "config.json", "b3", err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__hub_write_ref(dir, "main", C1, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__hub_write_ref(dir, "v1", C1, err, sizeof err), PGD_OK);
    cr_assert_eq(pgd__hub_write_ref(dir, "refs/pr/1", C2, err, sizeof err), PGD_OK);

    struct pgd__hub_cached_repo *repos = NULL;
    size_t n = 0;
    cr_assert_eq(pgd__hub_scan_cache(cache, &repos, &n, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(repos[0].repo, "Alpha/Model");
    cr_expect_str_eq(repos[1].repo, "zeta/Model");
    cr_assert_eq(repos[0].n_revs, 2);
    cr_assert_eq(repos[1].n_revs, 1);
    cr_expect_eq(repos[1].revs[0].n_files, 1);
    cr_expect(!repos[1].revs[0].refs || !repos[1].revs[0].refs[0]);
    for (size_t i = 0; i < 2; i++) {
        const struct pgd__hub_cached_rev *v = &repos[0].revs[i];
        const char *refs = v->refs ? v->refs : "";
        if (!strcmp(v->commit, C1)) {
            cr_expect_eq(v->n_files, 2);
            cr_expect(!strcmp(refs, "main, v1") || !strcmp(refs, "v1, main"), "refs '%s'",
                      refs);
        } else {
            cr_expect_str_eq(v->commit, C2);
            cr_expect_eq(v->n_files, 1);
            cr_expect_str_eq(refs, "refs/pr/1");
        }
    }
    pgd__hub_cached_free(repos, n);
    nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
