/* The main() of a fuzz target outside libFuzzer: feeds each file of its corpus
 * (tests/fuzz/corpus/FUZZ_TARGET/, or the files and folders named on the command line) to
 * LLVMFuzzerTestOneInput once, so that `make check` replays every corpus without clang.
 * Prints one line per file that crashes nothing, and the Criterion-style synthesis line
 * .ci/run sums. A crash or a failed FUZZ_CHECK ends the program (and fails the test). */
#include "tests/fuzz/fuzz.h"
#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

static int n_files;

static bool run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return false;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *p = realloc(buf, cap);
            if (!p) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(buf);
                fclose(f);
                return false;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    /* An exact-size copy, so that ASan catches a read one past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return false;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    n_files++;
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (a stable replay). */
static bool run_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open the corpus folder\n", dir);
        return false;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    bool ok = true;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char **p = realloc(names, (n + 1) * sizeof *names);
        if (!p || !(p[n] = strdup(e->d_name))) {
            names = p ? p : names;
            ok = false;
            break;
        }
        names = p;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat st;
        if (ok && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            ok = run_file(path);
        free(names[i]);
    }
    free(names);
    return ok;
}

static bool run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: no such file or folder\n", path);
        return false;
    }
    return S_ISDIR(st.st_mode) ? run_dir(path) : run_file(path);
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    bool ok = true;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            ok = run_path(argv[i]) && ok;
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/%s", fuzz_srcdir(), FUZZ_TARGET);
        ok = run_dir(dir);
    }
    if (ok && n_files == 0) {
        fprintf(stderr, "fuzz_%s: the corpus is empty\n", FUZZ_TARGET);
        ok = false;
    }
    printf("fuzz_%s: %d corpus file(s) replayed\n", FUZZ_TARGET, n_files);
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n",
           n_files + !ok, n_files, !ok);
    return ok ? 0 : 1;
}
