/* Fuzz target: the chat-template interpreter (lexer, parser, evaluator, filters, its JSON
 * reader). An input is a template source, a NUL byte, then the messages JSON (when there is
 * no NUL the whole input is the template and the messages are a fixed short conversation).
 * The first byte of the template is a flags byte: bit 0 add_generation_prompt, bit 1 pass
 * tools, bit 2 pass extra kwargs.
 *
 * Renders run under small limits (steps, output, memory, depth), so that a template that
 * loops or recurses is refused quickly instead of timing out.
 *
 * Checked: compile and render either succeed or fail with a message; a rendered prompt is
 * NUL-terminated at its reported length and within the output limit. */
#include "tests/fuzz/fuzz.h"
#include <pagoda/chat_template.h>
#include <string.h>

#define OUTPUT_LIMIT (256 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

static const char default_messages[] =
    "[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"},"
    "{\"role\":\"assistant\",\"content\":\"hello\"},{\"role\":\"user\",\"content\":\"again\"}]";
static const char tools[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]";
static const char kwargs[] = "{\"enable_thinking\":false,\"x\":[1,2,{\"y\":null}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    size_t src_len = nul ? (size_t)(nul - (data + 1)) : size - 1;
    char *src = malloc(src_len + 1);
    memcpy(src, data + 1, src_len);
    src[src_len] = '\0';
    char *msgs = NULL;
    if (nul) {
        size_t n = size - (size_t)(nul + 1 - data);
        msgs = malloc(n + 1);
        memcpy(msgs, nul + 1, n);
        msgs[n] = '\0';
    }

    struct pgd_chat_template *tpl = NULL;
    char err[512] = "";
    enum pgd_status st = pgd_chat_template_create(src, "fuzz", &tpl, err, sizeof err);
    if (st != PGD_OK) {
        FUZZ_CHECK(err[0] && !tpl, "a refused template without a message");
        goto done;
    }
    struct pgd_chat_template_limits lim = pgd_chat_template_default_limits();
    lim.max_steps = 100000;
    lim.max_output_bytes = OUTPUT_LIMIT;
    lim.max_memory_bytes = 16 << 20;
    lim.max_depth = 64;
    pgd_chat_template_set_limits(tpl, &lim);
    char *out = NULL;
    size_t out_len = 0;
    err[0] = '\0';
    st = pgd_chat_template_render(tpl, msgs ? msgs : default_messages,
                                  (flags & 2) ? tools : NULL, flags & 1,
                                  (flags & 4) ? kwargs : NULL, "<s>", "</s>", &out, &out_len,
                                  err, sizeof err);
    if (st == PGD_OK) {
        FUZZ_CHECK(out && strlen(out) <= out_len && out[out_len] == '\0',
                   "a prompt not NUL-terminated at its length");
        FUZZ_CHECK(out_len <= OUTPUT_LIMIT, "%zu bytes past the output limit", out_len);
    } else {
        FUZZ_CHECK(err[0], "a failed render without a message (status %d)", st);
    }
    free(out);
    pgd_chat_template_destroy(tpl);
done:
    free(src);
    free(msgs);
    return 0;
}
