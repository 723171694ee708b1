/* A model directory's chat template for the commands that host a frontend (`pagoda serve`,
 * `pagoda chat`): loaded and compiled once, rendered through the frontend's
 * pgd_chat_render_fn (renders are thread-safe). */
#include "tools/commands.h"
#include "runtime/base/buf.h"
#include <pagoda/chat_template.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum pgd_status pgd_tool_chat_render(void *ctx, const char *messages_json,
                                     const char *tools_json, bool add_generation_prompt,
                                     const char *kwargs_json, char **out, char *err,
                                     size_t errlen)
{
    struct pgd_tool_chat *c = ctx;
    return pgd_chat_template_render(c->tpl, messages_json, tools_json, add_generation_prompt,
                                    kwargs_json, c->cfg.bos_token, c->cfg.eos_token, out, NULL,
                                    err, errlen);
}

/* The override is --chat-template: a file, or the template itself as vLLM takes it. */
static enum pgd_status load_override(const char *override, struct pgd_tool_chat *c, char *err,
                                     size_t errlen)
{
    struct stat sb;
    bool is_file = stat(override, &sb) == 0;
    if (!is_file && !strstr(override, "{{") && !strstr(override, "{%"))
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "--chat-template %s: no such file "
                        "(nor a template: it has no {{ or {%%)", override);
    char *src = NULL;
    size_t len;
    if (is_file) {
        enum pgd_status st = pgd__read_file(override, &src, &len, err, errlen);
        if (st != PGD_OK)
            return st;
    } else if (!(src = strdup(override))) {
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "--chat-template: out of memory");
    }
    free(c->cfg.source);
    c->cfg.source = src;
    return pgd_chat_template_create(src, is_file ? override : "--chat-template", &c->tpl, err,
                                    errlen);
}

enum pgd_status pgd_tool_chat_load(const char *dir, const char *override,
                                   struct pgd_tool_chat *c, bool *found, char *err,
                                   size_t errlen)
{
    *found = false;
    enum pgd_status st = pgd_chat_template_config_load(dir, &c->cfg, err, errlen);
    if (st != PGD_OK && st != PGD_ERR_NOT_FOUND)
        return st;
    if (override)
        st = load_override(override, c, err, errlen);
    else if (st == PGD_ERR_NOT_FOUND || !c->cfg.source)
        return PGD_OK;
    else
        st = pgd_chat_template_create(c->cfg.source, c->cfg.path, &c->tpl, err, errlen);
    *found = st == PGD_OK;
    return st;
}

void pgd_tool_chat_fini(struct pgd_tool_chat *c)
{
    pgd_chat_template_destroy(c->tpl);
    pgd_chat_template_config_fini(&c->cfg);
    c->tpl = NULL;
}
