/* Loader fixture: a well-formed architecture plugin. Its forward pass does nothing; it exists
 * so that tests can load it, find it by architecture and call through its vtable. It calls
 * back into libpagoda (pgd_errf) to show that a RTLD_LOCAL plugin resolves the host's symbols. */
#include <pagoda/plugin.h>
#include <stdlib.h>

/* What load allocates: owned by the host through the opaque model pointer, freed by destroy. */
struct fixture_model {
    int n_layers;
};

static enum pgd_status fixture_load(struct pgd_model_ctx *ctx, struct pgd_model_desc *desc,
                                    void **model, char *err, size_t errlen)
{
    if (!desc || !model)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "fixture-arch: load needs desc and model");
    struct fixture_model *m = malloc(sizeof *m);
    if (!m)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "fixture-arch: out of memory");
    m->n_layers = 2;
    *desc = (struct pgd_model_desc){ .n_layers = m->n_layers, .n_kv_heads = 1, .head_dim = 4,
                                     .hidden_size = 4, .vocab_size = 8,
                                     .max_position_embeddings = 16 };
    *model = m;
    return PGD_OK;
}

static void fixture_forward(void *model, struct pgd_fwd *f) { (void)model; (void)f; }

static void fixture_destroy(void *model) { free(model); }

static const char *const fixture_archs[] = { "FixtureForCausalLM", "FixtureMoeForCausalLM",
                                             NULL };

static const struct pgd_arch_ops fixture_ops = {
    .architectures = fixture_archs,
    .load = fixture_load,
    .forward = fixture_forward,
    .destroy = fixture_destroy,
};

static const struct pgd_plugin fixture_plugin = {
    .abi_version = PGD_ABI_VERSION,
    .struct_size = sizeof(struct pgd_plugin),
    .kind = PGD_PLUGIN_ARCH,
    .name = "fixture-arch",
    .version = "1.2.3",
    .description = "test fixture: an architecture that computes nothing",
    .arch = &fixture_ops,
};

PGD_PLUGIN_EXPORT const struct pgd_plugin *pagoda_plugin_init(uint32_t host_abi)
{
    return &fixture_plugin;
}
