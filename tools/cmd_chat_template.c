/* `pagoda chat-template --model DIR [--add-generation-prompt]`: renders a model's chat
 * template for the conversation read from stdin and prints the prompt to stdout.
 *
 * stdin holds either an array of OpenAI-style messages, or an object
 * {"messages": [...], "tools": [...], "chat_template_kwargs": {...},
 *  "add_generation_prompt": true}. */
#include "config.h"
#include "tools/commands.h"
#include "runtime/base/buf.h"
#include <pagoda/chat_template.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pagoda chat-template --model DIR [--add-generation-prompt]\n\n"
            "Renders the chat template of DIR (a folder holding tokenizer_config.json or\n"
            "chat_template.jinja) for the conversation on stdin, as transformers'\n"
            "apply_chat_template(tokenize=False) would, and prints the prompt.\n\n"
            "stdin: a JSON array of messages, or an object with \"messages\" and optionally\n"
            "\"tools\", \"chat_template_kwargs\" (e.g. {\"enable_thinking\": false}) and\n"
            "\"add_generation_prompt\".\n");
}

/* JSON text of j (NULL for NULL), caller frees. */
static char *dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_COMPACT) : NULL;
}

int pgd_cmd_chat_template(int argc, char **argv)
{
    const char *model = NULL;
    bool gen = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strncmp(argv[i], "--model=", 8)) {
            model = argv[i] + 8;
        } else if (!strcmp(argv[i], "--add-generation-prompt")) {
            gen = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pagoda chat-template: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    struct pgd_chat_template_config cfg;
    if (pgd_chat_template_config_load(model, &cfg, err, sizeof err)) {
        fprintf(stderr, "pagoda chat-template: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct pgd_chat_template *tpl = NULL;
    char *input = NULL, *msgs = NULL, *tools = NULL, *kwargs = NULL, *prompt = NULL;
    json_t *in = NULL;
    char rerr[256];
    if (pgd__read_stream(stdin, "stdin", &input, NULL, rerr, sizeof rerr)) {
        fprintf(stderr, "pagoda chat-template: cannot read stdin\n");
        goto out;
    }
    json_error_t je;
    in = json_loads(input, JSON_ALLOW_NUL, &je);
    if (!in) {
        fprintf(stderr, "pagoda chat-template: <stdin>: line %d, column %d: %s\n", je.line,
                je.column, je.text);
        goto out;
    }
    json_t *jm = in, *jt = NULL, *jk = NULL;
    if (json_is_object(in)) {
        jm = json_object_get(in, "messages");
        jt = json_object_get(in, "tools");
        jk = json_object_get(in, "chat_template_kwargs");
        json_t *g = json_object_get(in, "add_generation_prompt");
        if (g && json_is_boolean(g))
            gen = gen || json_is_true(g);
        if (!jm) {
            fprintf(stderr, "pagoda chat-template: <stdin>: no \"messages\"\n");
            goto out;
        }
    }
    if (jt && json_is_null(jt))
        jt = NULL;
    msgs = dump(jm);
    tools = dump(jt);
    kwargs = dump(jk);
    /* a named "tool_use" template serves requests with tools, as transformers chooses */
    const char *source = jt && cfg.tool_use_source ? cfg.tool_use_source : cfg.source;
    if (pgd_chat_template_create(source, cfg.path, &tpl, err, sizeof err)) {
        fprintf(stderr, "pagoda chat-template: %s\n", err);
        goto out;
    }
    size_t len;
    enum pgd_status st = pgd_chat_template_render(tpl, msgs, tools, gen, kwargs, cfg.bos_token,
                                                  cfg.eos_token, &prompt, &len, err, sizeof err);
    if (st == PGD_ERR_INVALID_ARG) {
        /* bad input, or the template's raise_exception(): say whose rule was broken */
        bool input_err = !strncmp(err, "messages", 8) || !strncmp(err, "tools:", 6) ||
                         !strncmp(err, "chat_template_kwargs:", 21);
        fprintf(stderr, "pagoda chat-template: %s: %s\n", input_err ? "<stdin>" : cfg.path, err);
        goto out;
    }
    if (st) {
        fprintf(stderr, "pagoda chat-template: %s\n", err);
        goto out;
    }
    if (fwrite(prompt, 1, len, stdout) != len || fflush(stdout)) {
        fprintf(stderr, "pagoda chat-template: cannot write the prompt\n");
        goto out;
    }
    rc = 0;
out:
    free(prompt);
    free(msgs);
    free(tools);
    free(kwargs);
    free(input);
    json_decref(in);
    pgd_chat_template_destroy(tpl);
    pgd_chat_template_config_fini(&cfg);
    return rc;
}
