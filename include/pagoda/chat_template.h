/* Chat templates: the Jinja2 `chat_template` of a Hugging Face tokenizer_config.json,
 * rendered byte for byte as transformers' apply_chat_template(tokenize=False) does.
 *
 * Compile a template once, render it many times (concurrently, from any thread: a compiled
 * template is read-only and every render has its own memory).
 *
 *     struct pgd_chat_template_config cfg;
 *     pgd_chat_template_config_load("models/qwen3", &cfg, err, sizeof err);
 *     struct pgd_chat_template *tpl;
 *     pgd_chat_template_create(cfg.source, cfg.path, &tpl, err, sizeof err);
 *     char *prompt;
 *     pgd_chat_template_render(tpl, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, true,
 *                              "{\"enable_thinking\":false}", cfg.bos_token, cfg.eos_token,
 *                              &prompt, NULL, err, sizeof err);
 *     ... free(prompt); pgd_chat_template_destroy(tpl); pgd_chat_template_config_fini(&cfg);
 *
 * The template sees what transformers gives it: `messages`, `tools` (none when not given),
 * `documents` (none), `add_generation_prompt`, `bos_token` and `eos_token` (undefined when
 * NULL), every key of the extra keyword arguments (e.g. `enable_thinking`), and the globals
 * `raise_exception`, `strftime_now`, `namespace`, `dict` and `range`. It renders with
 * trim_blocks and lstrip_blocks on, `tojson` is Python's json.dumps(ensure_ascii=False), and
 * values follow Python's semantics. */
#ifndef PAGODA_CHAT_TEMPLATE_H
#define PAGODA_CHAT_TEMPLATE_H

#include <pagoda/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pgd_chat_template;

/* Compiles a Jinja2 template. name (may be NULL) prefixes every error message, e.g. the file
 * the template came from. On a syntax error returns PGD_ERR_TEMPLATE with a message
 * "NAME: line L, column C: what". *out is owned by the caller: pgd_chat_template_destroy. */
enum pgd_status pgd_chat_template_create(const char *source, const char *name,
                                         struct pgd_chat_template **out, char *err,
                                         size_t errlen);
void pgd_chat_template_destroy(struct pgd_chat_template *tpl);

/* Bounds on one render, so that a hostile template cannot hang or exhaust the server. */
struct pgd_chat_template_limits {
    uint64_t max_steps;         /* evaluation steps (nodes evaluated, items iterated) */
    size_t max_output_bytes;    /* length of the rendered prompt */
    size_t max_memory_bytes;    /* working memory of one render */
    int max_depth;              /* nesting of expressions, blocks and macro calls */
};
struct pgd_chat_template_limits pgd_chat_template_default_limits(void);
/* Replaces the limits of tpl (not thread-safe with renders of tpl in flight). */
void pgd_chat_template_set_limits(struct pgd_chat_template *tpl,
                                  const struct pgd_chat_template_limits *limits);

/* Renders the template.
 *  messages_json      a JSON array of message objects (OpenAI style); keys whose value is
 *                     null are dropped and reasoning fields aliased, as apply_chat_template does
 *  tools_json         a JSON array of tool schemas, or NULL (the template sees none)
 *  extra_kwargs_json  a JSON object whose keys become template variables, or NULL
 *  bos_token, eos_token  the special tokens' text, or NULL to leave them undefined
 * On success *out is the NUL-terminated prompt (caller frees it with free()) and *out_len
 * (if out_len is non-NULL) its length in bytes. Errors: PGD_ERR_INVALID_ARG for malformed
 * JSON inputs and for a template's raise_exception(message) (err holds exactly the message:
 * the conversation broke the template's rules); PGD_ERR_TEMPLATE for errors of the template
 * itself (err names the line and column); PGD_ERR_NOMEM. */
enum pgd_status pgd_chat_template_render(const struct pgd_chat_template *tpl,
                                         const char *messages_json, const char *tools_json,
                                         bool add_generation_prompt,
                                         const char *extra_kwargs_json, const char *bos_token,
                                         const char *eos_token, char **out, size_t *out_len,
                                         char *err, size_t errlen);

/* What a model directory says about its chat template. All strings are owned by the struct
 * (free them with pgd_chat_template_config_fini); any of them may be NULL. */
struct pgd_chat_template_config {
    char *source;               /* the template to use by default */
    char *tool_use_source;      /* the "tool_use" template of a named-template list, if any */
    char *bos_token, *eos_token;
    char *path;                 /* the file the template was read from */
};

/* Reads the chat template, bos_token and eos_token of a model directory: the template from
 * chat_template.jinja when present, else tokenizer_config.json's "chat_template" (a string,
 * or a list of {name, template} from which "default" is taken), else chat_template.json;
 * bos_token and eos_token from tokenizer_config.json (strings or AddedToken-like objects
 * {"content": ...}). PGD_ERR_NOT_FOUND when the directory has no chat template. */
enum pgd_status pgd_chat_template_config_load(const char *model_dir,
                                              struct pgd_chat_template_config *cfg, char *err,
                                              size_t errlen);
void pgd_chat_template_config_fini(struct pgd_chat_template_config *cfg);

#ifdef __cplusplus
}
#endif
#endif
