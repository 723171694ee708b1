/* A model directory's chat template for the commands that host a frontend (`pagoda serve`,
 * `pagoda chat`): loaded and compiled once, rendered through the frontend's
 * pgd_chat_render_fn (renders are thread-safe). */
#include "tools/commands.h"
#include <pagoda/chat_template.h>

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

enum pgd_status pgd_tool_chat_load(const char *dir, struct pgd_tool_chat *c, bool *found,
                                   char *err, size_t errlen)
{
    *found = false;
    enum pgd_status st = pgd_chat_template_config_load(dir, &c->cfg, err, errlen);
    if (st == PGD_ERR_NOT_FOUND || (st == PGD_OK && !c->cfg.source))
        return PGD_OK;
    if (st == PGD_OK)
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
