/* Which files of a repo a fetch takes: the default include set (what inference needs) plus
 * the user's --include globs, minus the --exclude globs. The user's globs follow
 * huggingface_hub's allow/ignore patterns: fnmatch(3) where '*' also crosses '/', and a
 * pattern ending in '/' means everything under that folder. The default set matches files
 * at the repo's top level only, so original/, onnx/ and other variants stay out unless asked. */
#include "config.h"
#include "runtime/hub/filter.h"
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

/* The files inference reads: the model config, generation defaults, every tokenizer format
 * pagoda or transformers loads, chat templates, safetensors weights and their index, and
 * the quantization configs of GPTQ/AWQ/compressed-tensors builds. Never *.bin, *.pth, *.pt,
 * *.gguf, *.onnx, *.msgpack, *.h5 (other formats of the same weights). */
static const char *const default_set[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "vocab.json",
    "merges.txt", "vocab.txt", "chat_template.jinja", "chat_template.json",
    "preprocessor_config.json", "quantize_config.json", "quant_config.json",
    "quantization_config.json", "params.json", "*.safetensors", "*.safetensors.index.json",
    "*.tiktoken",
};

bool pgd__hub_default_is_literal(size_t i, const char **name)
{
    if (i >= sizeof default_set / sizeof default_set[0])
        return false;
    *name = strchr(default_set[i], '*') ? NULL : default_set[i];
    return true;
}

static bool user_match(const char *pattern, const char *path)
{
    char buf[1024];
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '/' && n + 2 < sizeof buf) {
        snprintf(buf, sizeof buf, "%s*", pattern);
        pattern = buf;
    }
    return fnmatch(pattern, path, 0) == 0;
}

bool pgd__hub_selected(const char *path, const char *const *include, size_t n_include,
                       const char *const *exclude, size_t n_exclude)
{
    bool in = false;
    for (size_t i = 0; !in && i < sizeof default_set / sizeof default_set[0]; i++)
        in = fnmatch(default_set[i], path, FNM_PATHNAME) == 0;
    for (size_t i = 0; !in && i < n_include; i++)
        in = user_match(include[i], path);
    for (size_t i = 0; in && i < n_exclude; i++)
        in = !user_match(exclude[i], path);
    return in;
}
