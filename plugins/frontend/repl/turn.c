/* One chat turn, shared by the interactive REPL and the piped mode: sends the conversation
 * with the user's message to the backend, shows the answer as it streams (<think> sections
 * dimmed, or left out when piped), appends the answer without its <think> sections to the
 * conversation, and prints the dim stats line. Also the piped mode itself. */
#include "plugins/frontend/repl/repl.h"
#include "runtime/base/buf.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t repl_interrupted;

#define DIM "\033[2m"
#define PLAIN "\033[0m"

struct turn_out {
    FILE *out;
    bool color;              /* a terminal: think sections dimmed; else left out */
    bool show_think;
    bool dim_on;
    struct repl_think think;
    struct pgd__buf answer;  /* the text outside <think> */
    bool ok;                 /* no allocation failed */
};

static void on_part(void *arg, bool thinking, const char *text, size_t len)
{
    struct turn_out *t = arg;
    if (!thinking)
        t->ok &= pgd__buf_append(&t->answer, text, len);
    if (thinking && !t->show_think)
        return;
    if (t->color && thinking != t->dim_on) {
        fputs(thinking ? DIM : PLAIN, t->out);
        t->dim_on = thinking;
    }
    fwrite(text, 1, len, t->out);
    fflush(t->out);
}

static void on_text(void *arg, const char *text, size_t len)
{
    struct turn_out *t = arg;
    repl_think_feed(&t->think, text, len, on_part, t);
}

void repl_stats_line(FILE *out, bool color, const struct repl_result *r)
{
    int n = r->completion_tokens > 0 ? r->completion_tokens : 0;
    double gen_s = r->ttft_s >= 0 ? r->total_s - r->ttft_s : 0;
    /* tokens/s over the decode (after the first token), as llama.cpp and vLLM report it */
    double rate = n > 1 && gen_s > 0 ? (n - 1) / gen_s : 0;
    fprintf(out, "%s%d tokens, %.1f tokens/s, TTFT %.0f ms%s%s\n", color ? DIM : "", n, rate,
            r->ttft_s >= 0 ? r->ttft_s * 1e3 : 0.0, r->aborted ? ", stopped" : "",
            color ? PLAIN : "");
}

enum pgd_status repl_turn(struct repl_backend *b, json_t *conv, const char *user,
                          const struct repl_turn_opts *o, struct repl_result *res, char *err,
                          size_t errlen)
{
    if (repl_conv_add(conv, "user", user, strlen(user)))
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    struct turn_out t = { .out = o->out, .color = o->color, .show_think = o->show_think,
                          .ok = true };
    enum pgd_status st = b->chat(b, conv, o->sampling, on_text, &t, &repl_interrupted, res,
                                 err, errlen);
    repl_think_flush(&t.think, on_part, &t);
    if (t.dim_on)
        fputs(PLAIN, t.out);
    if (st == PGD_OK && !t.ok)
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory");
    if (st == PGD_OK)
        st = repl_conv_add(conv, "assistant", t.answer.p ? t.answer.p : "", t.answer.len)
                 ? pgd_errf(err, errlen, PGD_ERR_NOMEM, "no memory")
                 : PGD_OK;
    else
        json_array_remove(conv, json_array_size(conv) - 1);   /* the user's message */
    if (t.answer.len && t.answer.p[t.answer.len - 1] != '\n')
        fputc('\n', t.out);
    fflush(t.out);
    pgd__buf_fini(&t.answer);
    return st;
}

/* stdin is not a terminal: all of it (less its final newlines) is one user message; only
 * the answer goes to stdout. */
int repl_pipe(struct repl_backend *b, struct repl_settings *s)
{
    char err[1024];
    char *text = NULL;
    size_t len = 0;
    if (pgd__read_stream(stdin, "stdin", &text, &len, err, sizeof err)) {
        fprintf(stderr, "pagoda chat: %s\n", err);
        return 1;
    }
    if (strlen(text) != len) {
        fprintf(stderr, "pagoda chat: stdin holds a NUL byte\n");
        free(text);
        return 1;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';          /* echo's newline is no part of the question */
    bool blank = true;
    for (size_t i = 0; i < len && blank; i++)
        blank = text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r';
    if (blank) {
        fprintf(stderr, "pagoda chat: stdin is empty: nothing to ask\n");
        free(text);
        return 1;
    }
    json_t *conv = repl_conv_new(s->system);
    struct repl_turn_opts o = { .out = stdout, .sampling = &s->sampling };
    struct repl_result res;
    enum pgd_status st = conv ? repl_turn(b, conv, text, &o, &res, err, sizeof err)
                              : pgd_errf(err, sizeof err, PGD_ERR_NOMEM, "no memory");
    json_decref(conv);
    free(text);
    if (st != PGD_OK) {
        fprintf(stderr, "pagoda chat: %s\n", err);
        return 1;
    }
    if (!s->no_stats && isatty(STDERR_FILENO))
        repl_stats_line(stderr, true, &res);
    return res.aborted ? 130 : 0;
}
