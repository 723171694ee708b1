/* The interactive REPL: libedit line editing with a history file kept across runs,
 * multi-line input (a trailing '\' continues; a paste arrives whole), the slash commands,
 * and Ctrl-C (stops an answer; at an empty prompt, like Ctrl-D, leaves). */
#include "plugins/frontend/repl/repl.h"
#include "runtime/base/buf.h"
#include <errno.h>
#include <histedit.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

struct repl {
    struct repl_backend *backend;
    struct repl_settings *cfg;
    json_t *conv;
    EditLine *el;
    History *hist;
    char history_path[4096];      /* "" when there is nowhere to keep it */
    bool continuation;            /* the prompt is "... " */
    bool ctrl_c, ctrl_c_typed;    /* Ctrl-C at the prompt, and whether a line was typed */
    bool color;
    int turns, tokens;            /* this session's, for /stats */
};

static void on_sigint(int sig)
{
    (void)sig;
    repl_interrupted = 1;
}

static char *prompt_fn(EditLine *el)
{
    struct repl *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    return r && r->continuation ? "... " : ">>> ";
}

/* mkdir -p of path's parent folders. */
static void make_parents(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0700);
            *p = '/';
        }
}

static void history_path(struct repl *r)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (r->cfg->history_file)
        snprintf(r->history_path, sizeof r->history_path, "%s", r->cfg->history_file);
    else if (state && state[0] == '/')
        snprintf(r->history_path, sizeof r->history_path, "%s/pagoda/chat_history", state);
    else if (home && home[0])
        snprintf(r->history_path, sizeof r->history_path, "%s/.local/state/pagoda/chat_history",
                 home);
    if (r->history_path[0])
        make_parents(r->history_path);
}

/* Ctrl-C at the prompt is a key (the prompt's tty mode has no ISIG, so no signal races
 * with the keys typed before it): it ends el_gets, telling whether a line was typed. */
static unsigned char on_ctrl_c(EditLine *el, int ch)
{
    (void)ch;
    struct repl *r = NULL;
    el_get(el, EL_CLIENTDATA, &r);
    const LineInfo *li = el_line(el);
    r->ctrl_c = true;
    r->ctrl_c_typed = li && li->lastchar > li->buffer;
    return CC_EOF;
}

static bool editor_open(struct repl *r)
{
    HistEvent ev;
    r->hist = history_init();
    r->el = el_init("pagoda", stdin, stdout, stderr);
    if (!r->hist || !r->el)
        return false;
    history(r->hist, &ev, H_SETSIZE, 1000);
    history(r->hist, &ev, H_SETUNIQUE, 1);
    history_path(r);
    if (r->history_path[0])
        history(r->hist, &ev, H_LOAD, r->history_path);   /* a missing file is fine */
    el_set(r->el, EL_CLIENTDATA, r);
    el_set(r->el, EL_EDITOR, "emacs");
    el_set(r->el, EL_PROMPT, prompt_fn);
    el_set(r->el, EL_HIST, history, r->hist);
    el_source(r->el, NULL);                                /* the user's ~/.editrc */
    el_set(r->el, EL_SETTY, "-d", "-isig", NULL);
    /* The wide call: the narrow one copies name and help and never frees them. */
    el_wset(r->el, EL_ADDFN, L"pgd-interrupt", L"drop the line; at an empty prompt, leave",
            on_ctrl_c);
    el_set(r->el, EL_BIND, "^C", "pgd-interrupt", NULL);
    return true;
}

static void editor_close(struct repl *r)
{
    if (r->el)
        el_end(r->el);
    if (r->hist)
        history_end(r->hist);
}

/* Whether more input is already waiting: the rest of a paste. */
static bool input_pending(void)
{
    struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Reads one message (maybe several lines). Returns false to leave (Ctrl-D, or Ctrl-C at an
 * empty prompt); *msg is malloc'd. */
static bool read_message(struct repl *r, char **msg)
{
    struct pgd__buf b = { 0 };
    r->continuation = false;
    for (;;) {
        int count = 0;
        r->ctrl_c = false;
        const char *line = el_gets(r->el, &count);
        if (!line || count <= 0) {
            if (r->ctrl_c && (b.len || r->ctrl_c_typed)) {   /* drop what was typed so far */
                fputc('\n', stdout);
                el_reset(r->el);
                pgd__buf_clear(&b);
                r->continuation = false;
                continue;
            }
            fputc('\n', stdout);
            pgd__buf_fini(&b);
            return false;
        }
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        bool more = n && line[n - 1] == '\\';
        pgd__buf_append(&b, line, more ? n - 1 : n);
        if (more || input_pending()) {
            pgd__buf_append(&b, "\n", 1);
            r->continuation = true;
            continue;
        }
        break;
    }
    *msg = b.p ? pgd__buf_steal(&b, NULL) : strdup("");
    return *msg != NULL;
}

static void remember(struct repl *r, const char *msg)
{
    HistEvent ev;
    if (!msg[0])
        return;
    history(r->hist, &ev, H_ENTER, msg);
    if (r->history_path[0])
        history(r->hist, &ev, H_SAVE, r->history_path);
}

static void show_settings(struct repl *r)
{
    const struct repl_sampling *s = &r->cfg->sampling;
    printf("model: %s (%s)\n", r->backend->name(r->backend),
           r->cfg->url ? r->cfg->url : "in-process");
    printf("system: %s\n", r->cfg->system ? r->cfg->system : "(none)");
    if (s->has & REPL_HAS_TEMPERATURE) printf("temperature: %g\n", s->temperature);
    else printf("temperature: (default)\n");
    if (s->has & REPL_HAS_TOP_P) printf("top_p: %g\n", s->top_p);
    else printf("top_p: (default)\n");
    if (s->has & REPL_HAS_TOP_K) printf("top_k: %d\n", s->top_k);
    else printf("top_k: (default)\n");
    if (s->has & REPL_HAS_MAX_TOKENS) printf("max_tokens: %d\n", s->max_tokens);
    else printf("max_tokens: (default)\n");
    if (s->has & REPL_HAS_SEED) printf("seed: %llu\n", (unsigned long long)s->seed);
    else printf("seed: (none)\n");
    printf("messages: %zu\n", json_array_size(r->conv));
}

static const char HELP[] =
    "/help                 this list\n"
    "/reset                start a new conversation (keeps /system)\n"
    "/system TEXT          the system message (no TEXT: none)\n"
    "/set KEY VALUE        KEY: temperature, top_p, top_k, max_tokens, seed\n"
    "/show                 the settings\n"
    "/save FILE            the conversation as OpenAI messages JSON\n"
    "/load FILE            a conversation saved with /save (or a request's \"messages\")\n"
    "/stats                the engine's running requests and KV cache, this session's totals\n"
    "/quit                 leave (also Ctrl-D, or Ctrl-C at an empty prompt)\n"
    "A line ending in '\\' continues on the next; Ctrl-C stops an answer.\n";

/* A /command. Returns false for /quit. */
static bool command(struct repl *r, char *line)
{
    char err[1024];
    char *arg = line + strcspn(line, " \t");
    if (*arg)
        *arg++ = '\0';
    arg += strspn(arg, " \t");
    if (!strcmp(line, "/quit") || !strcmp(line, "/exit") || !strcmp(line, "/bye"))
        return false;
    if (!strcmp(line, "/help") || !strcmp(line, "/?")) {
        fputs(HELP, stdout);
    } else if (!strcmp(line, "/reset")) {
        json_t *c = repl_conv_new(r->cfg->system);
        if (c) {
            json_decref(r->conv);
            r->conv = c;
        }
        printf("new conversation\n");
    } else if (!strcmp(line, "/system")) {
        free(r->cfg->system);
        r->cfg->system = *arg ? strdup(arg) : NULL;
        repl_conv_set_system(r->conv, r->cfg->system);
        printf(r->cfg->system ? "system message set\n" : "system message removed\n");
    } else if (!strcmp(line, "/set")) {
        char *val = arg + strcspn(arg, " \t");
        if (*val)
            *val++ = '\0';
        val += strspn(val, " \t");
        if (!*arg || !*val)
            printf("usage: /set temperature|top_p|top_k|max_tokens|seed VALUE\n");
        else if (repl_sampling_set(&r->cfg->sampling, arg, val, err, sizeof err))
            printf("%s\n", err);
        else
            printf("%s = %s\n", arg, val);
    } else if (!strcmp(line, "/show")) {
        show_settings(r);
    } else if (!strcmp(line, "/save") || !strcmp(line, "/load")) {
        json_t *c = NULL;
        if (!*arg)
            printf("usage: %s FILE\n", line);
        else if (line[1] == 's' ? repl_conv_save(r->conv, arg, err, sizeof err)
                                : repl_conv_load(arg, &c, err, sizeof err))
            printf("%s\n", err);
        else if (c) {
            json_decref(r->conv);
            r->conv = c;
            printf("loaded %zu messages from %s\n", json_array_size(c), arg);
        } else
            printf("saved %zu messages to %s\n", json_array_size(r->conv), arg);
    } else if (!strcmp(line, "/stats")) {
        char s[512];
        r->backend->engine_stats(r->backend, s, sizeof s);
        printf("%s\nsession: %d answers, %d tokens, %zu messages\n", s, r->turns, r->tokens,
               json_array_size(r->conv));
    } else {
        printf("unknown command '%s': /help lists the commands\n", line);
    }
    fflush(stdout);
    return true;
}

static void ask(struct repl *r, const char *msg)
{
    char err[1024];
    struct repl_result res;
    struct repl_turn_opts o = { .out = stdout, .color = r->color, .show_think = true,
                                .sampling = &r->cfg->sampling };
    /* Keys typed during the answer wait for the next prompt instead of echoing into it. */
    struct termios saved, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    }
    repl_interrupted = 0;
    enum pgd_status st = repl_turn(r->backend, r->conv, msg, &o, &res, err, sizeof err);
    bool stopped = repl_interrupted;
    repl_interrupted = 0;
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    if (st != PGD_OK) {
        fprintf(stderr, "error: %s\n", err);
        return;
    }
    r->turns++;
    r->tokens += res.completion_tokens > 0 ? res.completion_tokens : 0;
    if (stopped)
        res.aborted = true;
    if (!r->cfg->no_stats)
        repl_stats_line(stdout, r->color, &res);
    fflush(stdout);
}

int repl_run(struct repl_backend *b, struct repl_settings *s)
{
    struct repl r = { .backend = b, .cfg = s, .color = isatty(STDOUT_FILENO) };
    struct sigaction sa = { .sa_handler = on_sigint }, old;
    sigemptyset(&sa.sa_mask);          /* Ctrl-C during an answer (the prompt's is a key) */
    sigaction(SIGINT, &sa, &old);
    int rc = 1;
    r.conv = repl_conv_new(s->system);
    if (!r.conv || !editor_open(&r)) {
        fprintf(stderr, "pagoda chat: cannot set up the terminal\n");
        goto out;
    }
    printf("pagoda chat with %s: /help for commands, Ctrl-D to leave\n", b->name(b));
    fflush(stdout);
    char *msg;
    while (read_message(&r, &msg)) {
        bool go_on = true;
        remember(&r, msg);
        if (msg[0] == '/')
            go_on = command(&r, msg);
        else if (msg[strspn(msg, " \t\n")])
            ask(&r, msg);
        free(msg);
        if (!go_on)
            break;
    }
    rc = 0;
out:
    editor_close(&r);
    json_decref(r.conv);
    sigaction(SIGINT, &old, NULL);
    return rc;
}
