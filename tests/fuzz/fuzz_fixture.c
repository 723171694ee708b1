/* The tiny-chat fixture of the frontend fuzz targets (see fuzz_fixture.h). */
#include "tests/fuzz/fuzz_fixture.h"
#include "tests/fuzz/fuzz.h"
#include <pagoda/chat_template.h>

static struct pgd_chat_template_config chat_cfg;
static struct pgd_chat_template *chat_tpl;

const char *fuzz_tiny_chat_dir(void)
{
    static char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/models/tiny-chat", fuzz_srcdir());
    return dir;
}

static void chat_fini(void)
{
    pgd_chat_template_destroy(chat_tpl);
    pgd_chat_template_config_fini(&chat_cfg);
    chat_tpl = NULL;
}

void fuzz_chat_init(void)
{
    char err[512] = "";
    if (pgd_chat_template_config_load(fuzz_tiny_chat_dir(), &chat_cfg, err, sizeof err) ||
        pgd_chat_template_create(chat_cfg.source, chat_cfg.path, &chat_tpl, err, sizeof err)) {
        fprintf(stderr, "fuzz: cannot load the tiny-chat template: %s\n", err);
        abort();
    }
    /* A hostile conversation must not make one render run long. */
    struct pgd_chat_template_limits lim = pgd_chat_template_default_limits();
    lim.max_steps = 200000;
    lim.max_output_bytes = 1 << 20;
    pgd_chat_template_set_limits(chat_tpl, &lim);
    atexit(chat_fini);
}

enum pgd_status fuzz_chat_render(void *ctx, const char *messages_json, const char *tools_json,
                                 bool add_generation_prompt, const char *kwargs_json,
                                 char **out, char *err, size_t errlen)
{
    return pgd_chat_template_render(chat_tpl, messages_json, tools_json,
                                    add_generation_prompt, kwargs_json, chat_cfg.bos_token,
                                    chat_cfg.eos_token, out, NULL, err, errlen);
}
