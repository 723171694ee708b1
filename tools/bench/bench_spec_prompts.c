/* The text prompt sets of `pagoda bench spec --prompts FILE`: a real model's acceptance rate
 * depends on what it is asked (an answer that quotes its prompt is found by prompt lookup, a
 * free answer less so), which random token ids cannot say. Reads the file, and renders each
 * prompt as a user turn through the model's chat template, as a chat request would be. */
#include "tools/bench/bench_spec_prompts.h"
#include "tools/commands.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const set_keys[2] = { "repetitive", "free-form" };

/* text as one user message through chat's template (with the generation prompt), or a
 * copy of it when chat is NULL. NULL (message in err) on failure. */
static char *render(struct pgd_tool_chat *chat, const char *text, char *err, size_t errlen)
{
    if (!chat) {
        char *copy = strdup(text);
        if (!copy)
            snprintf(err, errlen, "out of memory");
        return copy;
    }
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", text);
    char *msgs_json = msgs ? json_dumps(msgs, JSON_COMPACT) : NULL;
    char *out = NULL;
    if (!msgs_json)
        snprintf(err, errlen, "out of memory");
    else if (pgd_tool_chat_render(chat, msgs_json, NULL, true, NULL, &out, err, errlen))
        out = NULL;
    free(msgs_json);
    json_decref(msgs);
    return out;
}

/* Set s of the file's object into p->set[s]; -1 with err naming path and key. */
static int load_set(json_t *root, int s, struct pgd_tool_chat *chat, const char *path,
                    struct spec_prompts *p, char *err, size_t errlen)
{
    json_t *list = json_object_get(root, set_keys[s]);
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0) {
        snprintf(err, errlen, "%s: \"%s\" must be a list of at least one prompt (a string)",
                 path, set_keys[s]);
        return -1;
    }
    if (!(p->set[s] = calloc(n, sizeof *p->set[s]))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *text = json_string_value(json_array_get(list, i));
        if (!text) {
            snprintf(err, errlen, "%s: \"%s\"[%zu] is not a string", path, set_keys[s], i);
            return -1;
        }
        char why[512] = "";
        if (!(p->set[s][i] = render(chat, text, why, sizeof why))) {
            snprintf(err, errlen, "%s: \"%s\"[%zu]: %s", path, set_keys[s], i, why);
            return -1;
        }
        p->n[s]++;
    }
    return 0;
}

int spec_prompts_load(const char *path, const char *model_dir, struct spec_prompts *p,
                      char *err, size_t errlen)
{
    *p = (struct spec_prompts){ 0 };
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: %s", path, root ? "not a JSON object" : je.text);
        json_decref(root);
        return -1;
    }
    struct pgd_tool_chat chat = { 0 };
    bool found = false;
    char why[512] = "";
    int rc = 0;
    if (pgd_tool_chat_load(model_dir, NULL, &chat, &found, why, sizeof why)) {
        snprintf(err, errlen, "%s: the chat template: %s", model_dir, why);
        rc = -1;
    }
    p->chat = found;
    for (int s = 0; s < 2 && !rc; s++)
        rc = load_set(root, s, found ? &chat : NULL, path, p, err, errlen);
    pgd_tool_chat_fini(&chat);
    json_decref(root);
    if (rc)
        spec_prompts_free(p);
    return rc;
}

void spec_prompts_free(struct spec_prompts *p)
{
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < p->n[s]; i++)
            free(p->set[s][i]);
        free(p->set[s]);
    }
    *p = (struct spec_prompts){ 0 };
}
