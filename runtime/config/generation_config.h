/* Internal: request sampling defaults from a model's generation_config.json, as vLLM's
 * --generation-config and --override-generation-config apply them. */
#ifndef PGD_RUNTIME_CONFIG_GENERATION_CONFIG_H
#define PGD_RUNTIME_CONFIG_GENERATION_CONFIG_H

#include <pagoda/engine.h>
#include <pagoda/status.h>

struct pgd__gen_defaults {
    /* pgd_sampling_default_params() with the config's fields applied; max_tokens is the
     * config's max_new_tokens, or 0 when it has none (the API's own default then). */
    struct pgd_sampling_params sp;
    char *json;                      /* owned: the fields applied, e.g. {"temperature":0.6} */
    char source[4200];               /* the file read, or why none was ("--generation-config
                                        vllm", "no generation_config.json in DIR") */
};

/* mode: "auto" (model_dir/generation_config.json when there is one), "vllm" (none), or a
 * directory (DIR/generation_config.json, which must exist). override_json (may be NULL): a
 * JSON object whose fields replace the file's. The fields read, by vLLM's names:
 * temperature, top_p, top_k, min_p, repetition_penalty, presence_penalty,
 * frequency_penalty, max_new_tokens (-> max_tokens; max_tokens is taken too). Others
 * (do_sample, eos_token_id, ...) are ignored here (the model reads its EOS ids itself).
 * Errors name the file and the field. On success out->json is owned: pgd__gen_defaults_fini. */
enum pgd_status pgd__gen_defaults_load(const char *mode, const char *model_dir,
                                       const char *override_json, struct pgd__gen_defaults *out,
                                       char *err, size_t errlen);
void pgd__gen_defaults_fini(struct pgd__gen_defaults *d);

#endif
