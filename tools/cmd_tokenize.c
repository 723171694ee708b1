/* `pagoda tokenize --model DIR [--special]`: text on stdin -> JSON array of token ids.
 * `pagoda detokenize --model DIR [--skip-special]`: JSON array of ids on stdin -> text. */
#include "tools/commands.h"
#include "runtime/base/buf.h"
#include <pagoda/tokenizer.h>
#include <jansson.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_args(int argc, char **argv, const char *cmd, const char *flag, const char **dir,
                      bool *flag_set)
{
    static struct option opts[] = {
        { "model", required_argument, NULL, 'm' },
        { "flag", no_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opts[1].name = flag;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': *dir = optarg; break;
        case 'f': *flag_set = true; break;
        case 'h':
            printf("usage: pagoda %s --model DIR [--%s]\n", cmd, flag);
            return 0;
        default:
            return 2;
        }
    }
    if (!*dir || optind != argc) {
        fprintf(stderr, "usage: pagoda %s --model DIR [--%s]\n", cmd, flag);
        return 2;
    }
    return -1;
}

int pgd_cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL;
    bool special = false;
    int rc = parse_args(argc, argv, "tokenize", "special", &dir, &special);
    if (rc >= 0)
        return rc;
    char err[1024];
    struct pgd_tokenizer *tok;
    if (pgd_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "pagoda tokenize: %s\n", err);
        return 1;
    }
    size_t len = 0;
    char *text, rerr[256];
    if (pgd__read_stream(stdin, "stdin", &text, &len, rerr, sizeof rerr)) {
        fprintf(stderr, "pagoda tokenize: cannot read stdin\n");
        pgd_tokenizer_destroy(tok);
        return 1;
    }
    struct pgd_tokens ids;
    pgd_tokens_init(&ids);
    rc = 0;
    if (pgd_tokenizer_encode(tok, text, len, special, &ids, err, sizeof err)) {
        fprintf(stderr, "pagoda tokenize: %s\n", err);
        rc = 1;
    } else {
        putchar('[');
        for (size_t i = 0; i < ids.n; i++)
            printf(i ? ", %d" : "%d", ids.ids[i]);
        printf("]\n");
    }
    pgd_tokens_fini(&ids);
    free(text);
    pgd_tokenizer_destroy(tok);
    return rc;
}

int pgd_cmd_detokenize(int argc, char **argv)
{
    const char *dir = NULL;
    bool skip = false;
    int rc = parse_args(argc, argv, "detokenize", "skip-special", &dir, &skip);
    if (rc >= 0)
        return rc;
    json_error_t je;
    json_t *arr = json_loadf(stdin, 0, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "pagoda detokenize: stdin: expected a JSON array of token ids (%s)\n",
                arr ? "not an array" : je.text);
        json_decref(arr);
        return 1;
    }
    size_t n = json_array_size(arr);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (size_t i = 0; ids && i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
            json_integer_value(v) > INT32_MAX) {
            fprintf(stderr, "pagoda detokenize: stdin: element %zu is not a token id\n", i);
            free(ids);
            json_decref(arr);
            return 1;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    json_decref(arr);
    char err[1024];
    struct pgd_tokenizer *tok;
    if (!ids || pgd_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "pagoda detokenize: %s\n", ids ? err : "out of memory");
        free(ids);
        return 1;
    }
    char *text;
    size_t len;
    rc = 0;
    if (pgd_tokenizer_decode(tok, ids, n, skip, &text, &len, err, sizeof err)) {
        fprintf(stderr, "pagoda detokenize: %s\n", err);
        rc = 1;
    } else {
        fwrite(text, 1, len, stdout);
        free(text);
    }
    free(ids);
    pgd_tokenizer_destroy(tok);
    return rc;
}
