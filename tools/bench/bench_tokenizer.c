/* bench_tokenizer: encode speed of pagoda's tokenizer (a benchmark program, not a test).
 *
 *   tools/bench/bench_tokenizer --model DIR --file TEXT [--iters N] [--chunk BYTES]
 *
 * Encodes the file N times (default 5) on one thread, either as one string or in pieces of
 * --chunk bytes (cut at line ends), and prints the best time, MB/s and tokens/s.
 * scripts/bench_tokenizer.py times the `tokenizers` package the same way. */
#include "runtime/base/buf.h"
#include "runtime/base/clock.h"
#include <pagoda/tokenizer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    const char *dir = NULL, *file = NULL;
    int iters = 5;
    size_t chunk = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--file")) file = argv[i + 1];
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk")) chunk = (size_t)atol(argv[i + 1]);
    }
    if (!dir || !file || iters < 1) {
        fprintf(stderr, "usage: bench_tokenizer --model DIR --file TEXT [--iters N] [--chunk B]\n");
        return 2;
    }
    char err[1024], *text;
    size_t sz;
    if (pgd__read_file(file, &text, &sz, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct pgd_tokenizer *tok;
    double t0 = pgd__now_s();
    if (pgd_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double load_s = pgd__now_s() - t0, best = 1e30;
    struct pgd_tokens ids;
    pgd_tokens_init(&ids);
    for (int it = 0; it < iters; it++) {
        ids.n = 0;
        double s = pgd__now_s();
        size_t off = 0;
        while (off < sz) {
            size_t n = sz - off;
            if (chunk && n > chunk) {
                n = chunk;
                while (off + n < sz && text[off + n - 1] != '\n')
                    n++;
            }
            if (pgd_tokenizer_encode(tok, text + off, n, false, &ids, err, sizeof err)) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            off += n;
        }
        double e = pgd__now_s() - s;
        if (e < best)
            best = e;
    }
    printf("pagoda  %-8s load %.2fs  encode %.3fs  %.1f MB/s  %.2f Mtok/s  (%zu tokens, %zu bytes, chunk %zu)\n",
           dir, load_s, best, (double)sz / best / 1e6, (double)ids.n / best / 1e6, ids.n, sz, chunk);
    pgd_tokens_fini(&ids);
    pgd_tokenizer_destroy(tok);
    free(text);
    return 0;
}
