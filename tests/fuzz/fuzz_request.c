/* Fuzz target: the OpenAI frontend's request decoding, without a socket. An input is a
 * request body; its first byte picks the route (odd: /v1/chat/completions, even:
 * /v1/completions) and the rest goes through oai_body_json and oai_gen_parse exactly as
 * http.c's dispatch hands it over, against the tiny-chat fixture's tokenizer and chat
 * template (so prompts are really rendered and tokenized).
 *
 * Checked on every input: a refusal carries a 4xx/5xx status, a type and a message; an
 * accepted request has 1..max_n prompts x n, every token id inside the vocabulary, and a
 * max_tokens that fits the context. */
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_fixture.h"
#include "plugins/frontend/openai/oai.h"
#include <pagoda/tokenizer.h>
#include <string.h>

static struct oai_server server;

static void fixture_fini(void)
{
    pgd_tokenizer_destroy((struct pgd_tokenizer *)server.model.tokenizer);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = fuzz_tiny_chat_dir();
    char err[512] = "";
    struct pgd_tokenizer *tok = NULL;
    if (pgd_tokenizer_load(dir, &tok, err, sizeof err)) {
        fprintf(stderr, "fuzz_request: cannot load the fixture: %s\n", err);
        abort();
    }
    fuzz_chat_init();
    server.cfg.max_n = 64;
    server.cfg.max_body_bytes = 4 << 20;
    server.cfg.response_role = "assistant";      /* the plugin's default (plugin.c) */
    server.model_name = "tiny-chat";
    server.model = (struct pgd_frontend_model){
        .struct_size = sizeof server.model, .tokenizer = tok, .name = "tiny-chat",
        .root = dir, .max_model_len = 512, .vocab_size = pgd_tokenizer_vocab_size(tok),
        .render_chat = fuzz_chat_render,
    };
    atexit(fixture_fini);
    return 0;
}

static void check_accepted(const struct oai_gen *g)
{
    const struct oai_server *s = &server;
    FUZZ_CHECK(g->n_prompts >= 1 && g->sp.n >= 1 && g->n_prompts * g->sp.n <= s->cfg.max_n,
               "%d prompts x n %d", g->n_prompts, g->sp.n);
    for (int i = 0; i < g->n_prompts; i++) {
        const struct oai_prompt *p = &g->prompts[i];
        FUZZ_CHECK(p->n_ids >= 1 && p->n_ids < s->model.max_model_len, "prompt %d: %d ids", i,
                   p->n_ids);
        for (int k = 0; k < p->n_ids; k++)
            FUZZ_CHECK(p->ids[k] >= 0 && p->ids[k] < s->model.vocab_size, "id %d", p->ids[k]);
        FUZZ_CHECK(g->sp.max_tokens == -1 ||
                   (g->sp.max_tokens >= 1 &&
                    p->n_ids + g->sp.max_tokens <= s->model.max_model_len),
                   "max_tokens %d with %d prompt ids", g->sp.max_tokens, p->n_ids);
    }
    FUZZ_CHECK(g->sp.n_stop >= 0 && g->sp.n_stop <= OAI_MAX_STOP, "%d stops", g->sp.n_stop);
    for (int i = 0; i < g->sp.n_stop; i++)
        FUZZ_CHECK(g->sp.stop[i] && g->sp.stop[i][0], "stop %d is empty", i);
    for (int i = 0; i < g->sp.n_logit_bias; i++)
        FUZZ_CHECK(g->sp.logit_bias[i].token >= 0 &&
                   g->sp.logit_bias[i].token < s->model.vocab_size, "bias id");
    FUZZ_CHECK(g->logprobs >= -1 && g->logprobs <= OAI_MAX_LOGPROBS, "logprobs %d",
               g->logprobs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool chat = data[0] & 1;
    struct oai_error e = { 0 };
    json_t *body = oai_body_json((const char *)data + 1, size - 1, &e);
    if (!body) {
        FUZZ_CHECK(e.status == 400 && e.type && e.msg[0], "a refused body without an error");
        return 0;
    }
    struct oai_gen g;
    if (oai_gen_parse(&server, chat, body, &g, &e))
        check_accepted(&g);
    else
        FUZZ_CHECK(e.status >= 400 && e.status < 600 && e.type && e.msg[0],
                   "a refusal without status/type/message (status %d)", e.status);
    oai_gen_fini(&g);
    json_decref(body);
    return 0;
}
